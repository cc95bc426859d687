"""Add one token per line of a text file to the database.

usage: python pushTokens.py TOKENS_FILE        (e.g. quickExample.txt)

Each line becomes the ``input`` of a token ``token_<n>``, numbered on from
the tokens already there, so running it twice adds the lines twice.
"""
import sys

import picasconfig
from picas.clients import CouchDB
from picas.generators import TokenGenerator


def next_index(db):
    index = 0
    while f"token_{index}" in db:
        index += 1
    return index


def make_tokens(lines, first):
    tokens = []
    for number, line in enumerate(lines, start=first):
        token = TokenGenerator.get_empty_token()
        token.update({"_id": f"token_{number}", "input": line, "exit_code": ""})
        tokens.append(token)
    return tokens


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with open(sys.argv[1]) as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    db = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                 username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
    saved = db.save_documents(make_tokens(lines, next_index(db)))
    print(f"Pushed {sum(saved)} of {len(saved)} tokens to {db.name}.")
    if not all(saved):
        sys.exit("Some tokens were not saved (their ids exist already?); run the script again.")
