#!/usr/bin/env python3
"""Write docs/api-members.md: what every implemented operation does with each member of its input.

The table comes from the declarations next to the handlers (``cachefleet/api/inputs.py``) and the
input shapes of botocore's service model, so it cannot drift from the code: a test fails when the
file differs from what this script writes. Run it after changing a declaration or botocore:

    .venv/bin/python scripts/api_members.py          # rewrite the file
    .venv/bin/python scripts/api_members.py --check  # exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cachefleet.api.app import ServiceApi, elasticache_api
from cachefleet.api.inputs import Treatment

DOC = Path(__file__).resolve().parent.parent / "docs" / "api-members.md"

_MEANING = {
    Treatment.IMPLEMENTED: "the operation does with it what ElastiCache does (within the note's limits)",
    Treatment.STORED: "accepted, kept and shown as ElastiCache shows it; it drives nothing on this host",
    Treatment.IGNORED: "accepted with no effect, as ElastiCache documents it",
    Treatment.NOT_YET: "refused with `InvalidParameterValue`: a later version builds it",
    Treatment.REFUSED: "refused with `InvalidParameterValue`: it cannot mean anything here",
}


def render(api: ServiceApi) -> str:
    lines = [
        "# Input members: what each operation does with them",
        "",
        "Written by `scripts/api_members.py` from the declarations next to the handlers",
        "(`src/cachefleet/api/inputs.py`, `src/cachefleet/api/handlers/`) and botocore's",
        f"`{api.model.service_name}` model (API version {api.model.api_version}); a test fails when this file is",
        "stale.",
        "A request that gives a refused member is answered `InvalidParameterValue` naming it, before the",
        "operation runs, and changes nothing. Where a refused member names an accepted value, that value is",
        "accepted (it asks for what this version does anyway, and tools such as Terraform send it).",
        "",
        "| Treatment | Meaning |",
        "|---|---|",
        *(f"| {treatment.value} | {meaning} |" for treatment, meaning in _MEANING.items()),
        "",
        "Nested members (`Parent.Child`) are listed where they are declared apart from their parent; the",
        "others share their parent's treatment.",
    ]
    for name in sorted(api.operations):
        shape = api.model.operation(name).input_shape
        lines += ["", f"## {name}", "", "| Member | Treatment | Note |", "|---|---|---|"]
        for path, member in api.operations[name].inputs.table(shape):
            note = member.note
            if member.accepted_text is not None:
                accepted = f"accepted: `{member.accepted_text}`"
                note = f"{note}; {accepted}" if note else accepted
            lines.append(f"| `{path}` | {member.treatment.value} | {note} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api-members.md is stale")
    args = parser.parse_args()
    text = render(elasticache_api())
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is stale: run scripts/api_members.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
