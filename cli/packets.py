"""`smdo validate FILE`: check one packet exactly as the hub does (hardened parse + validation).

Exit 0 and `valid: ...` when it passes; otherwise exit 1 and one line per problem,
`code N: message (path)`. `--json` prints the problems as a JSON list (empty when valid).
`--explain` reports schema problems with xmlschema's wording (slower, same codes).
"""
from __future__ import annotations

import json
import os
import sys

import click

from smdo.errors import ErrorCode, PacketRejected, Problem
from smdo.packet import read_header
from smdo.validation import explain, validate
from smdo.xmlparse import Limits, parse_xml

MSG_TYPE_NAMES = {0: "acknowledgement", 1: "document", 2: "supplement", 3: "reply", 4: "supplement to a reply"}


def check_file(path: str, limits: Limits = Limits(), *, detailed: bool = False) -> tuple[list[Problem], bytes | None]:
    """Problems of the packet in `path` ([] if valid) and its bytes (None if not read)."""
    # Look at the size before reading, so a huge file is never loaded into memory.
    size = os.stat(path).st_size
    if size > limits.max_bytes:
        return [Problem(int(ErrorCode.XML_UNPARSABLE),
                        f"packet too large: {size} bytes, the limit is {limits.max_bytes}")], None
    with open(path, "rb") as f:
        data = f.read(limits.max_bytes + 1)
    try:
        root = parse_xml(data, limits)
    except PacketRejected as exc:
        return exc.problems, data
    problems = validate(root)
    if problems and detailed:
        problems = explain(data)
    return problems, data


@click.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
@click.option("--explain", "detailed", is_flag=True, help="Describe schema problems with xmlschema (slower).")
def validate_command(file: str, as_json: bool, detailed: bool) -> None:
    """Check an SDIP packet: hardened parse, XSD and the format's rules, with error codes."""
    problems, data = check_file(file, detailed=detailed)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in problems], ensure_ascii=False))
    elif problems:
        for problem in problems:
            click.echo(str(problem))
    else:
        header = read_header(parse_xml(data))
        click.echo(f"valid: msg_id={header.msg_id} msg_type={header.msg_type} "
                   f"({MSG_TYPE_NAMES[header.msg_type]}) from {header.sender_id} to {','.join(header.receiver_ids)}")
    sys.exit(1 if problems else 0)
