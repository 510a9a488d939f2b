"""`make -s dev-token SUB=user_x [ORG=org_y] [ROLE=admin|member]`: print one development session
token; `make -s dev-token TASK=1`: one task token, as Cloud Scheduler attaches to ``/tasks/*``.

Signed by the development issuer's key in the state directory; a session token is valid for one
hour (Clerk's own live 60 s), and ``ROLE`` is the organization role, ``admin`` unless ``member``.
"""

from __future__ import annotations

import argparse

from devstack import issuer as dev_issuer
from devstack.dev_env import read_dev_env, state_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sub", required=True)
    parser.add_argument("--org", default="")
    parser.add_argument("--role", choices=("admin", "member"), default="admin")
    parser.add_argument("--task", action="store_true", help="a task token instead")
    args = parser.parse_args()
    env = read_dev_env()
    issuer = env.get("CLERK_ISSUER", f"http://127.0.0.1:{8089}")
    key = dev_issuer.ensure_key(state_dir() / "dev-signing-key.pem")
    if args.task:
        print(dev_issuer.task_token(key, issuer))
        return
    print(dev_issuer.session_token(key, issuer, args.sub, args.org or None, args.role))


if __name__ == "__main__":
    main()
