#!/usr/bin/python3
"""One HTTP GET (stdlib only, so it runs inside any network namespace): prints
{"status": N, "body": TEXT} or {"error": TEXT} as one JSON line.  Usage: client.py URL TIMEOUT"""

import json
import sys
import urllib.error
import urllib.request


def main() -> None:
    url, timeout = sys.argv[1], float(sys.argv[2])
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        with opener.open(url, timeout=timeout) as response:
            print(json.dumps({"status": response.status, "body": response.read().decode(errors="replace")}))
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": error.read().decode(errors="replace")}))
    except (OSError, ValueError) as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))


if __name__ == "__main__":
    main()
