"""``python -m hashrec.loadtest ARGS``: Locust with this package's locustfile (e.g. a distributed worker:
``python -m hashrec.loadtest --worker --master-host HOST``)."""

from __future__ import annotations

import sys
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def main() -> None:
    from locust.main import main as locust_main

    sys.argv = ["locust", "-f", str(LOCUSTFILE), *sys.argv[1:]]
    locust_main()


if __name__ == "__main__":
    main()
