"""Exit codes of the shim, as documented in docs/worker-channel.md ("Exit codes of the shim")."""

STOPPED = 0
"""Stopped on request (SIGTERM, SIGINT, SIGQUIT)."""

PARENT_GONE = 1
"""The arbiter died (channel EOF, or it was gone before we could arm PR_SET_PDEATHSIG)."""

USAGE = 2
"""Started wrongly: bad options, bad ARBITER_* environment, an inherited fd that is not a listener."""

BOOT_FAILED = 3
"""The app failed to boot: import error, exception at import, lifespan startup failed."""

UNUSABLE_INTERPRETER = 4
"""The interpreter cannot run the shim: no uvicorn, uvicorn too old or missing an internal the shim
relies on, a requested library missing; or the arbiter speaks another channel protocol."""
