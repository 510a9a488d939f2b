"""Inlet's Pulumi program (README "Deploy"): ``pulumi up`` runs ``infra/__main__.py``."""
