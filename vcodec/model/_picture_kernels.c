/* Frame format 6's fixed-point upsampling and synthesis, compiled (vcodec/model/fixed_point.py drives it).
 *
 * Activations are int32 counts of 2^-F (|a| <= 2^30). Each layer's sum is accumulated in double from
 * weights q 2^-k (|q| < 2^15) and the 1/2 of the rounding: every product and partial sum is a multiple of
 * 2^-max(k, 1) below 2^(52 - max(k, 1)) (bounds in fixed_point.py), so double holds each of them exactly,
 * whatever the order, the vector width or fused multiply-adds: the result is the same integer on every
 * machine. Each sum is floored (rounding half up) and clamped before it is stored.
 *
 * The functions take a range of rows (or pixels), so that threads can share a frame; they release the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ACT_LIMIT 1073741824.0 /* vcodec.format.PICTURE_ACT_LIMIT, 2^30 */
#define PIXEL_TILE 128         /* pixels that the 1x1 layers carry through all layers at once (L1-sized) */

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
/* One build for every x86-64 CPU, with an AVX2/FMA version picked at load time where the CPU has it. The
   integers do not depend on which runs (header comment). */
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

static inline double clamp_act(double v, double low) {
    return v < low ? low : (v > ACT_LIMIT ? ACT_LIMIT : v);
}

static inline Py_ssize_t clamp_index(Py_ssize_t i, Py_ssize_t n) {
    return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

/* row[0 .. length) = line[j - border] as doubles, the line's ends repeated where j - border is outside
   [0, n); with `relu`, negative samples are 0 (a pre-activated branch). */
static inline void padded_row(const int32_t *line, Py_ssize_t n, Py_ssize_t border, Py_ssize_t length, int relu,
                              double *row) {
    for (Py_ssize_t j = 0; j < border; j++) row[j] = (double)line[0];
    for (Py_ssize_t j = 0; j < n; j++) row[border + j] = (double)line[j];
    for (Py_ssize_t j = border + n; j < length; j++) row[j] = (double)line[n - 1];
    if (relu)
        for (Py_ssize_t j = 0; j < length; j++) row[j] = row[j] < 0.0 ? 0.0 : row[j];
}

/* Taps of the 2x upsampling by output parity: output row 2p + a takes padded input rows p + dy with kernel
   row ky, for the 4 (dy, ky) pairs of parity a (the same pairs for columns). The padding is 2 samples. */
static const int PHASE_DY[2][4] = {{0, 1, 2, 3}, {1, 2, 3, 4}};
static const int PHASE_KY[2][4] = {{7, 5, 3, 1}, {6, 4, 2, 0}};

/* The loops below work on blocks of LANES pixels with their accumulators in small fixed-size arrays, which
   the compiler keeps in vector registers: each loaded input feeds several outputs. */
#define LANES 8

/* The upsampling's inner loop in 4-double vectors (GCC/Clang vector extensions: AVX2 in the x86-64-v3
   clone, pairs of SSE2 registers otherwise; the arithmetic is the same double multiply-adds). */
typedef double vec4 __attribute__((vector_size(32)));
#define VEC_BLOCK 16 /* pixels per block: 4 vectors per output parity, 8 independent accumulators */

static inline vec4 load4(const double *p) {
    vec4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

VECTOR_CLONES
static void upsample_rows(const int32_t *src, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w,
                          const double *kernel, int32_t *dst, Py_ssize_t height, Py_ssize_t width,
                          Py_ssize_t p0, Py_ssize_t p1, double *rows, double *phases) {
    const Py_ssize_t blocks = (w + VEC_BLOCK - 1) / VEC_BLOCK, padded = blocks * VEC_BLOCK + 4;
    for (Py_ssize_t c = 0; c < channels; c++) {
        const int32_t *plane = src + c * h * w;
        int32_t *out = dst + c * height * width;
        for (Py_ssize_t p = p0; p < p1; p++) {
            for (int t = 0; t < 5; t++) /* padded rows p .. p + 4: input rows p - 2 .. p + 2, replicated */
                padded_row(plane + clamp_index(p + t - 2, h) * w, w, 2, padded, 0, rows + t * padded);
            for (int a = 0; a < 2; a++) {
                const Py_ssize_t y = 2 * p + a;
                if (y >= height) continue;
                double taps[4][5][2]; /* [row tap][column shift 0..4][column parity]: kernel value or 0 */
                for (int i = 0; i < 4; i++)
                    for (int s = 0; s < 5; s++)
                        for (int b = 0; b < 2; b++) {
                            const int j = s - b; /* column tap j of parity b reads shift PHASE_DY[b][j] = j + b */
                            taps[i][s][b] = (j >= 0 && j < 4) ? kernel[PHASE_KY[a][i] * 8 + PHASE_KY[b][j]] : 0.0;
                        }
                for (Py_ssize_t q0 = 0; q0 < blocks * VEC_BLOCK; q0 += VEC_BLOCK) {
                    vec4 even[4], odd[4];
                    for (int v = 0; v < 4; v++) even[v] = odd[v] = (vec4){0.5, 0.5, 0.5, 0.5};
                    for (int i = 0; i < 4; i++) {
                        const double *row = rows + PHASE_DY[a][i] * padded + q0;
                        for (int s = 0; s < 5; s++) {
                            const double k0 = taps[i][s][0], k1 = taps[i][s][1];
                            for (int v = 0; v < 4; v++) {
                                const vec4 x = load4(row + s + 4 * v);
                                even[v] += k0 * x;
                                odd[v] += k1 * x;
                            }
                        }
                    }
                    for (int v = 0; v < 4; v++)
                        for (int l = 0; l < 4; l++) {
                            phases[2 * (q0 + 4 * v + l)] = even[v][l];
                            phases[2 * (q0 + 4 * v + l) + 1] = odd[v][l];
                        }
                }
                int32_t *line = out + y * width;
                for (Py_ssize_t x = 0; x < width; x++) line[x] = (int32_t)clamp_act(floor(phases[x]), -ACT_LIMIT);
            }
        }
    }
}

/* Outputs o .. o + count of one layer on a tile of PIXEL_TILE pixels: each loaded input feeds
   2 * count vector accumulators. Inlined with a constant count (1-4), so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void pointwise_block(const double *x, int32_t in, int32_t o, int count,
                                                                  const double *weight, const double *bias, double low,
                                                                  double *y) {
    for (Py_ssize_t t0 = 0; t0 < PIXEL_TILE; t0 += LANES) {
        vec4 acc[4][2];
        for (int k = 0; k < count; k++) acc[k][0] = acc[k][1] = (vec4){0.0, 0.0, 0.0, 0.0} + bias[o + k];
        for (int32_t i = 0; i < in; i++) {
            const double *column = x + i * PIXEL_TILE + t0;
            const vec4 x0 = load4(column), x1 = load4(column + 4);
            for (int k = 0; k < count; k++) {
                const double w = weight[(o + k) * in + i];
                acc[k][0] += w * x0;
                acc[k][1] += w * x1;
            }
        }
        for (int k = 0; k < count; k++)
            for (int l = 0; l < LANES; l++) y[(o + k) * PIXEL_TILE + t0 + l] = clamp_act(floor(acc[k][l / 4][l % 4]), low);
    }
}

/* One layer on a tile of PIXEL_TILE pixels: y[o] = clamp(floor(bias[o] + sum_i weight[o][i] x[i]), low),
   outputs 4 at a time then the 1-3 left. */
VECTOR_CLONES
static void pointwise_layer(const double *x, int32_t in, int32_t out, const double *weight, const double *bias,
                            double low, double *y) {
    int32_t o = 0;
    for (; o + 4 <= out; o += 4) pointwise_block(x, in, o, 4, weight, bias, low, y);
    switch (out - o) {
        case 3: pointwise_block(x, in, o, 3, weight, bias, low, y); break;
        case 2: pointwise_block(x, in, o, 2, weight, bias, low, y); break;
        case 1: pointwise_block(x, in, o, 1, weight, bias, low, y); break;
        default: break;
    }
}

VECTOR_CLONES
static void pointwise_pixels(const int32_t *src, Py_ssize_t pixels, Py_ssize_t n0, Py_ssize_t n1,
                             const int32_t *widths, Py_ssize_t layers, const double *weights,
                             const double *biases, int32_t *dst, double *x, double *y) {
    for (Py_ssize_t start = n0; start < n1; start += PIXEL_TILE) {
        const Py_ssize_t count = (n1 - start < PIXEL_TILE) ? n1 - start : PIXEL_TILE;
        for (int32_t i = 0; i < widths[0]; i++)
            for (Py_ssize_t t = 0; t < PIXEL_TILE; t++) /* a last, partial tile is padded with zeros */
                x[i * PIXEL_TILE + t] = t < count ? (double)src[i * pixels + start + t] : 0.0;
        const double *weight = weights, *bias = biases;
        for (Py_ssize_t l = 0; l < layers; l++) {
            const double low = (l + 1 < layers) ? 0.0 : -ACT_LIMIT; /* ReLU but after the last layer */
            pointwise_layer(x, widths[l], widths[l + 1], weight, bias, low, y);
            weight += (Py_ssize_t)widths[l] * widths[l + 1];
            bias += widths[l + 1];
            double *swap = x; x = y; y = swap;
        }
        for (int32_t o = 0; o < widths[layers]; o++)
            for (Py_ssize_t t = 0; t < count; t++) dst[o * pixels + start + t] = (int32_t)x[o * PIXEL_TILE + t];
    }
}

VECTOR_CLONES
static void residual_rows(const int32_t *src, Py_ssize_t height, Py_ssize_t width, const double *weight,
                          const double *bias, int preactivate, int32_t *dst, Py_ssize_t y0, Py_ssize_t y1,
                          double *rows, double *acc) {
    const Py_ssize_t blocks = (width + LANES - 1) / LANES, padded = blocks * LANES + 2;
    for (Py_ssize_t y = y0; y < y1; y++) {
        for (int i = 0; i < 3; i++)
            for (int dy = 0; dy < 3; dy++) /* the branch's rows y - 1 .. y + 1 of plane i, replicated */
                padded_row(src + (i * height + clamp_index(y + dy - 1, height)) * width, width, 1, padded,
                           preactivate, rows + (i * 3 + dy) * padded);
        for (Py_ssize_t x0 = 0; x0 < blocks * LANES; x0 += LANES) { /* the 3 outputs share each input load */
            vec4 sums[3][2];
            for (int o = 0; o < 3; o++) sums[o][0] = sums[o][1] = (vec4){0.0, 0.0, 0.0, 0.0} + bias[o];
            for (int i = 0; i < 3; i++)
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++) {
                        const double *source = rows + (i * 3 + dy) * padded + x0 + dx;
                        const vec4 s0 = load4(source), s1 = load4(source + 4);
                        for (int o = 0; o < 3; o++) {
                            const double k = weight[((o * 3 + i) * 3 + dy) * 3 + dx];
                            sums[o][0] += k * s0;
                            sums[o][1] += k * s1;
                        }
                    }
            for (int o = 0; o < 3; o++)
                for (int l = 0; l < LANES; l++) acc[o * blocks * LANES + x0 + l] = sums[o][l / 4][l % 4];
        }
        for (int o = 0; o < 3; o++) {
            const int32_t *skip = src + (o * height + y) * width;
            int32_t *line = dst + (o * height + y) * width;
            const double *sum = acc + o * blocks * LANES;
            for (Py_ssize_t x = 0; x < width; x++)
                line[x] = (int32_t)clamp_act(floor(sum[x]) + (double)skip[x], -ACT_LIMIT);
        }
    }
}

/* Buffer checks: every size below is checked against the buffers' lengths before the loops run. */
static int expect_bytes(const Py_buffer *buffer, Py_ssize_t count, Py_ssize_t item, const char *name) {
    if (count < 0 || buffer->len < count * item) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, %zd needed", name, buffer->len, count * item);
        return 0;
    }
    return 1;
}

static PyObject *upsample2x(PyObject *self, PyObject *args) {
    Py_buffer src, kernel, dst;
    Py_ssize_t channels, h, w, height, width, p0, p1;
    if (!PyArg_ParseTuple(args, "y*nnny*w*nnnn", &src, &channels, &h, &w, &kernel, &dst, &height, &width, &p0, &p1))
        return NULL;
    PyObject *result = NULL;
    double *rows = NULL, *phase = NULL;
    if (h < 1 || w < 1 || height > 2 * h || width > 2 * w || p0 < 0 || p1 > h || p0 > p1) {
        PyErr_SetString(PyExc_ValueError, "upsample2x: sizes or row range out of bounds");
        goto done;
    }
    if (!expect_bytes(&src, channels * h * w, 4, "src") || !expect_bytes(&kernel, 64, 8, "kernel") ||
        !expect_bytes(&dst, channels * height * width, 4, "dst"))
        goto done;
    rows = malloc(sizeof(double) * 5 * ((w + VEC_BLOCK - 1) / VEC_BLOCK * VEC_BLOCK + 4));
    phase = malloc(sizeof(double) * 2 * ((w + VEC_BLOCK - 1) / VEC_BLOCK * VEC_BLOCK));
    if (!rows || !phase) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    upsample_rows(src.buf, channels, h, w, kernel.buf, dst.buf, height, width, p0, p1, rows, phase);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(rows);
    free(phase);
    PyBuffer_Release(&src);
    PyBuffer_Release(&kernel);
    PyBuffer_Release(&dst);
    return result;
}

static PyObject *pointwise(PyObject *self, PyObject *args) {
    Py_buffer src, widths, weights, biases, dst;
    Py_ssize_t pixels, n0, n1;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*w*nn", &src, &pixels, &widths, &weights, &biases, &dst, &n0, &n1))
        return NULL;
    PyObject *result = NULL;
    double *x = NULL, *y = NULL;
    const Py_ssize_t layers = widths.len / 4 - 1;
    const int32_t *width = widths.buf;
    Py_ssize_t widest = 0, weight_count = 0, bias_count = 0;
    if (layers < 1 || pixels < 0 || n0 < 0 || n1 > pixels || n0 > n1) {
        PyErr_SetString(PyExc_ValueError, "pointwise: no layer, or pixel range out of bounds");
        goto done;
    }
    for (Py_ssize_t l = 0; l <= layers; l++) {
        if (width[l] < 1 || width[l] > 4096) {
            PyErr_SetString(PyExc_ValueError, "pointwise: a layer width is out of bounds");
            goto done;
        }
        widest = width[l] > widest ? width[l] : widest;
        if (l < layers) { weight_count += (Py_ssize_t)width[l] * width[l + 1]; bias_count += width[l + 1]; }
    }
    if (!expect_bytes(&src, width[0] * pixels, 4, "src") || !expect_bytes(&weights, weight_count, 8, "weights") ||
        !expect_bytes(&biases, bias_count, 8, "biases") || !expect_bytes(&dst, width[layers] * pixels, 4, "dst"))
        goto done;
    x = malloc(sizeof(double) * widest * PIXEL_TILE);
    y = malloc(sizeof(double) * widest * PIXEL_TILE);
    if (!x || !y) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    pointwise_pixels(src.buf, pixels, n0, n1, width, layers, weights.buf, biases.buf, dst.buf, x, y);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(x);
    free(y);
    PyBuffer_Release(&src);
    PyBuffer_Release(&widths);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&biases);
    PyBuffer_Release(&dst);
    return result;
}

static PyObject *residual3x3(PyObject *self, PyObject *args) {
    Py_buffer src, weight, bias, dst;
    Py_ssize_t height, width, y0, y1;
    int preactivate;
    if (!PyArg_ParseTuple(args, "y*nny*y*pw*nn", &src, &height, &width, &weight, &bias, &preactivate, &dst, &y0, &y1))
        return NULL;
    PyObject *result = NULL;
    double *rows = NULL, *acc = NULL;
    if (height < 1 || width < 1 || y0 < 0 || y1 > height || y0 > y1) {
        PyErr_SetString(PyExc_ValueError, "residual3x3: sizes or row range out of bounds");
        goto done;
    }
    if (!expect_bytes(&src, 3 * height * width, 4, "src") || !expect_bytes(&weight, 81, 8, "weight") ||
        !expect_bytes(&bias, 3, 8, "bias") || !expect_bytes(&dst, 3 * height * width, 4, "dst"))
        goto done;
    if (src.buf == dst.buf) {
        PyErr_SetString(PyExc_ValueError, "residual3x3: dst must not be src (rows are read around each output)");
        goto done;
    }
    rows = malloc(sizeof(double) * 9 * ((width + LANES - 1) / LANES * LANES + 2));
    acc = malloc(sizeof(double) * 3 * ((width + LANES - 1) / LANES * LANES));
    if (!rows || !acc) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    residual_rows(src.buf, height, width, weight.buf, bias.buf, preactivate, dst.buf, y0, y1, rows, acc);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(rows);
    free(acc);
    PyBuffer_Release(&src);
    PyBuffer_Release(&weight);
    PyBuffer_Release(&bias);
    PyBuffer_Release(&dst);
    return result;
}

/* One activation (units of 2^-shift after any 2x2 sum) -> a sample: floor(a peak 2^-shift + 1/2), clipped
   to [0, peak]; integer arithmetic, equal to the same formula on the exact double a peak 2^-shift. */
static inline uint16_t to_sample(int64_t a, int64_t peak, int shift) {
    const int64_t n = a * peak + ((int64_t)1 << (shift - 1));
    if (n < 0) return 0;
    const int64_t v = n >> shift;
    return (uint16_t)(v > peak ? peak : v);
}

/* to_samples(planes int32 (3, H, W), H, W, mean, bitdepth, frac_bits, y uint16 (H, W), u, v uint16 (h, w)): luma
   sample by sample; chroma the 2x2 block means (h = H / 2, w = W / 2) or the blocks' top-left samples
   (h = ceil(H / 2), w = ceil(W / 2)). */
static PyObject *to_samples(PyObject *self, PyObject *args) {
    Py_buffer planes, y, u, v;
    Py_ssize_t height, width;
    int mean, bitdepth, frac_bits;
    if (!PyArg_ParseTuple(args, "y*nnpiiw*w*w*", &planes, &height, &width, &mean, &bitdepth, &frac_bits, &y, &u, &v))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t rows = mean ? height / 2 : (height + 1) / 2, cols = mean ? width / 2 : (width + 1) / 2;
    if (height < 1 || width < 1 || bitdepth < 1 || bitdepth > 16 || frac_bits < 1 || frac_bits > 30) {
        PyErr_SetString(PyExc_ValueError, "to_samples: size, bit depth or fractional bits out of bounds");
        goto done;
    }
    if (!expect_bytes(&planes, 3 * height * width, 4, "planes") ||
        !expect_bytes(&y, height * width, 2, "y") || !expect_bytes(&u, rows * cols, 2, "u") ||
        !expect_bytes(&v, rows * cols, 2, "v"))
        goto done;
    const int32_t *plane = planes.buf;
    const int64_t peak = ((int64_t)1 << bitdepth) - 1;
    uint16_t *luma = y.buf, *chroma[2] = {u.buf, v.buf};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < height * width; i++) luma[i] = to_sample(plane[i], peak, frac_bits);
    for (int c = 0; c < 2; c++) {
        const int32_t *source = plane + (c + 1) * height * width;
        for (Py_ssize_t r = 0; r < rows; r++) {
            const int32_t *top = source + 2 * r * width, *below = top + width;
            uint16_t *line = chroma[c] + r * cols;
            if (mean) /* a quarter of the 2x2 sum: 2 more fractional bits */
                for (Py_ssize_t x = 0; x < cols; x++)
                    line[x] = to_sample((int64_t)top[2 * x] + top[2 * x + 1] + below[2 * x] + below[2 * x + 1], peak,
                                        frac_bits + 2);
            else
                for (Py_ssize_t x = 0; x < cols; x++) line[x] = to_sample(top[2 * x], peak, frac_bits);
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&planes);
    PyBuffer_Release(&y);
    PyBuffer_Release(&u);
    PyBuffer_Release(&v);
    return result;
}

static PyMethodDef methods[] = {
    {"upsample2x", upsample2x, METH_VARARGS,
     "upsample2x(src, channels, h, w, kernel, dst, height, width, p0, p1): input rows p0..p1 of the (C, h, w) "
     "int32 stack -> output rows 2 p0 .. 2 p1 of the (C, height, width) int32 dst; kernel: 64 float64 taps."},
    {"pointwise", pointwise, METH_VARARGS,
     "pointwise(src, pixels, widths, weights, biases, dst, n0, n1): the 1x1 layers on pixels n0..n1 of the "
     "(widths[0], pixels) int32 src -> (widths[-1], pixels) int32 dst; float64 weights and biases (+1/2)."},
    {"residual3x3", residual3x3, METH_VARARGS,
     "residual3x3(src, height, width, weight, bias, preactivate, dst, y0, y1): rows y0..y1 of a residual "
     "block src + round(conv3x3(relu?(src))) on 3 int32 planes -> dst (not src)."},
    {"to_samples", to_samples, METH_VARARGS,
     "to_samples(planes, height, width, mean, bitdepth, frac_bits, y, u, v): the 3 int32 output planes -> uint16 samples, "
     "chroma by the 2x2 mean (mean true) or the top-left sample."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_picture_kernels",
                                    "Frame format 6's fixed-point upsampling and synthesis, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__picture_kernels(void) { return PyModule_Create(&module); }
