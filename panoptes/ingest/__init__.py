"""One blueprint per engine protocol. Views stay thin: decode, validate, call the store, answer."""
