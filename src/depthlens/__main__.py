"""``python -m depthlens``: the ``depthlens`` command."""

from depthlens.cli import main

main()
