#!/bin/sh
# Write the fractal token set: one bash command per line, for 'picas push'.
#
#   sh make-tokens.sh [COUNT] [WIDTH] [HEIGHT] [MAX_ITER] > fractal-tokens.txt
#
# Each token renders one frame of a zoom into the Mandelbrot set (seahorse valley), each
# frame 1.25 times deeper than the one before.  With the defaults (50 frames, 1600x1200,
# 20000 iterations) a token runs for minutes, the deep frames longest: a long-running set
# whose pilots stay busy.  The payload is the 'fractal' program that the pilot's setup
# line builds in the sandbox ($PICAS_SANDBOX) with cc; it writes the frame into the
# token's working directory and prints a one-line summary, which the pilot attaches to
# the token as its log.
set -eu
count=${1:-50}
width=${2:-1600}
height=${3:-1200}
max_iter=${4:-20000}
awk -v n="$count" -v w="$width" -v h="$height" -v m="$max_iter" 'BEGIN {
    for (i = 0; i < n; i++) {
        scale = 3.0 / (1.25 ^ i)
        printf "\"$PICAS_SANDBOX/fractal\" %d %d %d -0.743643887037151 0.131825904205330 %.6g frame-%03d.pgm\n",
            w, h, m, scale, i
    }
}'
