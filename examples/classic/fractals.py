"""Draw a Julia set as a PGM image: the work of one token of the long-running example.

usage: python3 fractals.py -o OUTPUT -q Q -d D -m M

The set is that of z -> z*z + c with c = -0.8 + Q i, on a D x D grid; each
pixel's grey level is the number of iterations (at most M) before |z| > 2.
It is deliberately plain Python, so that bigger parameters take long.
"""
import argparse


def julia(q, size, limit):
    c = complex(-0.8, q)
    rows = []
    for y in range(size):
        row = bytearray(size)
        for x in range(size):
            z = complex(3.0 * x / size - 1.5, 3.0 * y / size - 1.5)
            n = 0
            while n < limit and abs(z) <= 2.0:
                z = z * z + c
                n += 1
            row[x] = 255 * n // limit
        rows.append(bytes(row))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-o", dest="output", required=True, help="image file to write (PGM)")
    parser.add_argument("-q", type=float, required=True, help="imaginary part of c")
    parser.add_argument("-d", type=int, required=True, help="width and height in pixels")
    parser.add_argument("-m", type=int, required=True, help="iteration limit")
    args = parser.parse_args()
    rows = julia(args.q, args.d, args.m)
    with open(args.output, "wb") as handle:
        handle.write(b"P5 %d %d 255\n" % (args.d, args.d))
        handle.writelines(rows)
    print(f"wrote {args.output}: {args.d}x{args.d} pixels, up to {args.m} iterations")


if __name__ == "__main__":
    main()
