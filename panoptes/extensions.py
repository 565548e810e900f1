"""Extension objects, created unbound and attached to the app in ``create_app``."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from .models import Base

# Objects stay readable after commit: ingestion answers from the row it just wrote without a
# second query.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
