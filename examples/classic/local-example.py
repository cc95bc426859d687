"""Process tokens on this machine until there are none left.

usage: python local-example.py [--endless] [--view todo] [--design-doc Monitor]

For each token in the todo view it runs ``./process_task.sh INPUT TOKEN_ID``,
stores the exit code in the token and attaches the command's output and
error streams as ``logs_<token>.out`` and ``logs_<token>.err``.  With
``--endless`` it keeps waiting for new tokens (until ``max_total_time``).
"""
import argparse
import os
import time

import picasconfig
from picas.actors import RunActor
from picas.clients import CouchDB
from picas.executers import execute
from picas.iterators import EndlessViewIterator
from picas.modifiers import BasicTokenModifier


class ExampleActor(RunActor):
    """Runs process_task.sh for each token (RunActor also has prepare_env, prepare_run, cleanup_run, cleanup_env)."""

    def __init__(self, db, modifier, view="todo", endless=False, **view_params):
        super().__init__(db, view=view, **view_params)
        if endless:
            self.iterator = EndlessViewIterator(self.iterator)
        self.modifier = modifier

    def process_task(self, token):
        print("-----------------------")
        print("Working on token: " + token["_id"])
        for key, value in token.doc.items():
            print(key, value)
        print("-----------------------", flush=True)

        command = ["./process_task.sh", token["input"], token["_id"]]
        if os.path.exists("/usr/bin/time"):
            command = ["/usr/bin/time", "-v"] + command  # resource usage goes to the .err log
        process, exit_code, stdout, stderr = execute(command)
        self.subprocess = process

        token["exit_code"] = exit_code
        self.modifier.close(token)

        # The logs travel with the token: they are saved in the same write as its result.
        for name, data in ((f"logs_{token['_id']}.out", stdout), (f"logs_{token['_id']}.err", stderr)):
            with open(name, "wb") as handle:
                handle.write(data)
            token.put_attachment(name, data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--endless", action="store_true", help="keep waiting for new tokens")
    parser.add_argument("--view", default="todo", help="view to take tokens from [todo]")
    parser.add_argument("--design-doc", default="Monitor", help="design document of the views [Monitor]")
    args = parser.parse_args()

    client = CouchDB(url=picasconfig.PICAS_HOST_URL, db=picasconfig.PICAS_DATABASE,
                     username=picasconfig.PICAS_USERNAME, password=picasconfig.PICAS_PASSWORD)
    print(f"Connected to the database {picasconfig.PICAS_DATABASE} successfully. Now starting work...",
          flush=True)
    actor = ExampleActor(client, BasicTokenModifier(), view=args.view, endless=args.endless,
                         design_doc=args.design_doc)
    started = time.time()
    actor.run(max_token_time=1800, max_total_time=3600, max_tasks=100, max_scrub=2)
    print(f"Done: {actor.tasks_processed} token(s) in {time.time() - started:.0f} s.")


if __name__ == "__main__":
    main()
