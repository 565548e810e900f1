"""The Seqera Platform API, self-hosted, under ``/seqera`` (see ``api.py``)."""
