"""The depthlens web service (``depthlens serve``): a REST API and a web page.

>>> from depthlens.serve import ServeSettings, create_app
>>> app = create_app(ServeSettings(models=("depthlens-small",)))  # doctest: +SKIP
"""

from depthlens.serve.app import FORMATS, create_app, load_models
from depthlens.serve.settings import ServeSettings, uvicorn_options

__all__ = ["FORMATS", "ServeSettings", "create_app", "load_models", "uvicorn_options"]
