"""Inlet's Pulumi program (docs/deploy.md): ``pulumi up`` runs ``infra/__main__.py``."""
