# Settings gunicorn has never heard of (it ignores them silently), beside two that map.
import multiprocessing
from os import cpu_count

workers = 2
wokers = multiprocessing.cpu_count()   # a typo of workers
max_request = 1000                      # a typo of max_requests


def post_forks(server, worker):         # a typo of post_fork
    pass
