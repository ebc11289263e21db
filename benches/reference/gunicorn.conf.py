"""gunicorn settings for rest_server.py: the course's deployment, 2 sync workers.

    ~/.cache/facerec/rest-venv/bin/gunicorn -c benches/reference/gunicorn.conf.py

FACEREC_REST_BIND (default 127.0.0.1:5000) and FACEREC_REST_WORKERS (default 2) override
the address and the number of worker processes; the server's own settings are in
rest_server.py.
"""
import os

chdir = os.path.dirname(os.path.abspath(__file__))
wsgi_app = "rest_server:app"
bind = os.environ.get("FACEREC_REST_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("FACEREC_REST_WORKERS", "2"))
worker_class = "sync"  # one request at a time per process; the connection is closed after it
timeout = 60           # a worker silent this long is killed (a /scan/url fetch times out at 10 s)
graceful_timeout = 10
backlog = 2048         # connections waiting for a free worker (the kernel caps it at somaxconn)
accesslog = None       # no access log: it would cost a write per request in the benchmark
errorlog = "-"
loglevel = "warning"
