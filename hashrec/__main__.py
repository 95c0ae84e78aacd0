"""python -m hashrec."""

from hashrec.cli import main

main()
