#!/bin/bash
# The work of one token.
#
# usage: ./process_task.sh INPUT TOKEN_ID
#
# INPUT is the token's "input" field.  A line of quickExample.txt is a shell
# command, run as it is.  A line made by createTokens holds fractal parameters
# ("-q 0.100 -d 256 -m 400"): those run fractals.py, which writes the image to
# output_TOKEN_ID.  The exit code of this script becomes the token's exit_code.
set -u

INPUT=$1
TOKENID=$2
OUTPUT=output_${TOKENID}

echo "$(date) on $(hostname): token ${TOKENID}"
echo "input: ${INPUT}"

if [[ "$INPUT" == -q* ]]; then
    # word splitting of $INPUT is wanted here: it holds the options
    # shellcheck disable=SC2086
    python3 "$(dirname "$0")/fractals.py" -o "$OUTPUT" $INPUT
else
    bash -c "$INPUT"
fi
status=$?
if [[ $status != 0 ]]; then
    echo "The work of token ${TOKENID} failed with exit code ${status}" >&2
fi
echo "$(date): finished"
exit $status
