workers = 2
bind = ["127.0.0.1:8000"
timeout = 30
