"""Inlet's Pulumi program (SPEC section 5): ``pulumi up`` runs ``infra/__main__.py``."""
