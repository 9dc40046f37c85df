"""The WSGI application gunicorn serves (barksite.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "barksite.settings")
application = get_wsgi_application()
