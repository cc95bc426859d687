/*
 * fractal: one tile of the Mandelbrot set, the payload of the picas grid example.
 *
 *   fractal WIDTH HEIGHT MAX_ITER CENTER_X CENTER_Y SCALE OUT.pgm
 *
 * Writes the tile as a greyscale PGM image and prints one line with what it computed:
 * the share of points inside the set and the mean escape count, so the token's log says
 * something even when the image stays on the worker node.  The run time grows with
 * WIDTH * HEIGHT * MAX_ITER, which is how the token set makes pilots work for a while.
 * Plain C99 and libm only: it builds with 'cc -O2 -o fractal fractal.c -lm' on any node.
 */
#include <stdio.h>
#include <stdlib.h>

static int usage(void)
{
    fprintf(stderr, "usage: fractal WIDTH HEIGHT MAX_ITER CENTER_X CENTER_Y SCALE OUT.pgm\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 8)
        return usage();
    long width = strtol(argv[1], NULL, 10), height = strtol(argv[2], NULL, 10);
    long max_iter = strtol(argv[3], NULL, 10);
    double cx = strtod(argv[4], NULL), cy = strtod(argv[5], NULL), scale = strtod(argv[6], NULL);
    if (width < 1 || height < 1 || max_iter < 1 || scale <= 0.0)
        return usage();

    FILE *out = fopen(argv[7], "wb");
    if (out == NULL) {
        perror(argv[7]);
        return 1;
    }
    fprintf(out, "P5\n%ld %ld\n255\n", width, height);

    long inside = 0;
    double total = 0.0;
    for (long row = 0; row < height; row++) {
        double y0 = cy + (row - height / 2.0) * scale / width;
        for (long col = 0; col < width; col++) {
            double x0 = cx + (col - width / 2.0) * scale / width;
            double x = 0.0, y = 0.0;
            long n = 0;
            while (n < max_iter && x * x + y * y <= 4.0) {
                double t = x * x - y * y + x0;
                y = 2.0 * x * y + y0;
                x = t;
                n++;
            }
            if (n == max_iter)
                inside++;
            total += (double)n;
            fputc(n == max_iter ? 0 : (int)(255 * n / max_iter), out);
        }
    }
    if (fclose(out) != 0) {
        perror(argv[7]);
        return 1;
    }
    printf("fractal %ldx%ld max_iter=%ld center=(%g,%g) scale=%g: %.2f%% inside, mean escape %.1f\n",
           width, height, max_iter, cx, cy, scale, 100.0 * inside / (width * height), total / (width * height));
    return 0;
}
