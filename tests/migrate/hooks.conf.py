# Every server hook gunicorn documents, for tests/integration/test_migrate.py.
bind = "127.0.0.1:8001"
workers = 2
worker_class = "uvicorn_worker.UvicornWorker"


def on_starting(server): pass
def on_reload(server): pass
def when_ready(server): pass
def pre_fork(server, worker): pass
def post_fork(server, worker): pass
def post_worker_init(worker): pass
def worker_int(worker): pass
def worker_abort(worker): pass
def pre_exec(server): pass
def pre_request(worker, req): pass
def post_request(worker, req, environ, resp): pass


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker): pass
def nworkers_changed(server, new_value, old_value): pass
def on_exit(server): pass
def ssl_context(config, default_ssl_context_factory): pass
def on_dirty_starting(arbiter): pass
def dirty_post_fork(arbiter, worker): pass
def dirty_worker_init(worker): pass
def dirty_worker_exit(arbiter, worker): pass
