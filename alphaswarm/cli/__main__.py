"""``python -m alphaswarm.cli``."""

from alphaswarm.cli import main

if __name__ == "__main__":
    main()
