"""Connection settings for the example scripts, in the picas 1.1.x style.

Store them once; the password is kept encrypted with the key in
~/.config/picas/key.dat:

    picas-cli init --host-url https://my-couchdb:6984 --database mydb --username me

(``picas init`` writes the same file in its newer format with profiles; this
module reads either.)  The scripts here import the four names below.
"""
from picas.crypto import decrypt_password
from picas.picas_config import PicasConfig

config = PicasConfig(load=True)
PICAS_HOST_URL = config.config["host_url"]
PICAS_DATABASE = config.config["database"]
PICAS_USERNAME = config.config["username"]
PICAS_PASSWORD = (decrypt_password(config.config["encrypted_password"]).decode()
                  if config.config["encrypted_password"] else None)

# The plain-text form of older picasconfig.py files still works too (keep such a file private):
# PICAS_HOST_URL = "https://my-couchdb:6984"
# PICAS_DATABASE = "mydb"
# PICAS_USERNAME = "me"
# PICAS_PASSWORD = "..."
