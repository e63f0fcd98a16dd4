"""``python -m depthlens.cli`` (what ``torchrun -m depthlens.cli train ...`` runs)."""

from depthlens.cli import main

main()
