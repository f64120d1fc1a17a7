/* Training's pointwise MLPs in float32, forward and backward (vcodec/model/pointwise_mlp.py drives them).
 *
 * The ARM (contexts -> mean, log2 scale) and the synthesis' 1x1 layers (upsampled latents -> 3 planes) are
 * the same kind of network: hidden layers relu(W x + b), residual (x + relu(W x + b)) where a layer says
 * so, and a linear output layer, applied to every column of a channels-first (C, N) matrix. Torch runs it
 * as one matrix product per layer over all N columns, writing every activation to memory and reading it
 * back in the backward pass. Here a chunk of CHUNK columns goes through every layer while it is in the
 * cache, and the backward pass recomputes the chunk's activations instead of keeping them: nothing of size
 * N is stored but the inputs, outputs and gradients.
 *
 * Not part of any bitstream: the encoder's float training only. Sums run in a fixed order (columns in
 * chunks, weight gradients accumulated in double per chunk), so a given column range gives the same
 * result on every call. Functions take a column range [lo, hi) so that threads can share a matrix; they
 * release the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WIDTH 64  /* vcodec.config: ARM and synthesis widths are at most 64 */
#define MAX_LAYERS 8
#define LANES 8       /* floats per vector: one AVX2 register */
#define SUBS 8        /* vectors per chunk */
#define CHUNK (LANES * SUBS)

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t mask __attribute__((vector_size(LANES * sizeof(float))));

/* v where keep is true (all ones), 0 elsewhere. */
static inline vec keep_where(mask keep, vec v) { return (vec)(keep & (mask)v); }

typedef struct {
    int layers;
    int width[MAX_LAYERS + 1];
    int residual[MAX_LAYERS];
    const float *weight[MAX_LAYERS]; /* (out, in), row-major as torch.nn.Linear holds it */
    const float *bias[MAX_LAYERS];
    Py_ssize_t weight_offset[MAX_LAYERS], bias_offset[MAX_LAYERS];
} Mlp;

/* One chunk's activations: act[l] is layer l's input (act[layers] the output), hidden[l] layer l's ReLU
   output before its residual input is added (its sign is the ReLU's gradient). */
typedef struct {
    vec act[MAX_LAYERS + 1][MAX_WIDTH][SUBS];
    vec hidden[MAX_LAYERS][MAX_WIDTH][SUBS];
} Chunk;

static int parse_mlp(Mlp *mlp, Py_buffer *widths, Py_buffer *residual, Py_buffer *weights, Py_buffer *biases) {
    const Py_ssize_t layers = widths->len / (Py_ssize_t)sizeof(int32_t) - 1;
    if (layers < 1 || layers > MAX_LAYERS || residual->len != layers) {
        PyErr_SetString(PyExc_ValueError, "mlp: 1 to 8 layers, one residual flag each");
        return 0;
    }
    const int32_t *width = widths->buf;
    const uint8_t *flag = residual->buf;
    Py_ssize_t weight_count = 0, bias_count = 0;
    mlp->layers = (int)layers;
    for (Py_ssize_t l = 0; l <= layers; l++) {
        if (width[l] < 1 || width[l] > MAX_WIDTH) {
            PyErr_SetString(PyExc_ValueError, "mlp: widths are 1 to 64");
            return 0;
        }
        mlp->width[l] = width[l];
    }
    for (Py_ssize_t l = 0; l < layers; l++) {
        mlp->residual[l] = flag[l] != 0;
        if (mlp->residual[l] && (width[l] != width[l + 1] || l + 1 == layers)) {
            PyErr_SetString(PyExc_ValueError, "mlp: a residual layer is hidden and keeps its width");
            return 0;
        }
        mlp->weight_offset[l] = weight_count;
        mlp->bias_offset[l] = bias_count;
        weight_count += (Py_ssize_t)width[l] * width[l + 1];
        bias_count += width[l + 1];
    }
    if (weights->len != weight_count * (Py_ssize_t)sizeof(float) || biases->len != bias_count * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "mlp: weights or biases disagree with the widths");
        return 0;
    }
    for (Py_ssize_t l = 0; l < layers; l++) {
        mlp->weight[l] = (const float *)weights->buf + mlp->weight_offset[l];
        mlp->bias[l] = (const float *)biases->buf + mlp->bias_offset[l];
    }
    return 1;
}

/* Columns [p, end) of a (rows, n) matrix into v, zeros in the rest of the chunk (end - p <= CHUNK). */
static void load_columns(const float *matrix, Py_ssize_t n, int rows, Py_ssize_t p, Py_ssize_t end, vec v[][SUBS]) {
    const Py_ssize_t count = end - p;
    for (int r = 0; r < rows; r++) {
        float *dest = (float *)v[r];
        memcpy(dest, matrix + (Py_ssize_t)r * n + p, (size_t)count * sizeof(float));
        if (count < CHUNK) memset(dest + count, 0, (size_t)(CHUNK - count) * sizeof(float));
    }
}

static void store_columns(float *matrix, Py_ssize_t n, int rows, Py_ssize_t p, Py_ssize_t end, vec v[][SUBS]) {
    for (int r = 0; r < rows; r++) memcpy(matrix + (Py_ssize_t)r * n + p, v[r], (size_t)(end - p) * sizeof(float));
}

/* chunk->act[0] through every layer. */
VECTOR_CLONES
static void forward_chunk(const Mlp *mlp, Chunk *chunk) {
    for (int l = 0; l < mlp->layers; l++) {
        const int in = mlp->width[l], out = mlp->width[l + 1], last = l + 1 == mlp->layers;
        const float *weight = mlp->weight[l];
        for (int o = 0; o < out; o++) {
            vec sum[SUBS];
            for (int s = 0; s < SUBS; s++) sum[s] = (vec){0} + mlp->bias[l][o];
            for (int i = 0; i < in; i++) {
                const float w = weight[o * in + i];
                for (int s = 0; s < SUBS; s++) sum[s] += w * chunk->act[l][i][s];
            }
            if (last) {
                for (int s = 0; s < SUBS; s++) chunk->act[l + 1][o][s] = sum[s];
                continue;
            }
            for (int s = 0; s < SUBS; s++) {
                const vec h = keep_where(sum[s] > 0.0f, sum[s]);
                chunk->hidden[l][o][s] = h;
                chunk->act[l + 1][o][s] = mlp->residual[l] ? h + chunk->act[l][o][s] : h;
            }
        }
    }
}

/* Given grad (the output's gradient of a chunk forward_chunk has run), the input's gradient into grad and
   each layer's weight and bias gradients added to grad_w, grad_b (vector partial sums, one per lane). */
VECTOR_CLONES
static void backward_chunk(const Mlp *mlp, Chunk *chunk, vec grad[MAX_WIDTH][SUBS], vec *grad_w, vec *grad_b) {
    vec dz[MAX_WIDTH][SUBS], below[MAX_WIDTH][SUBS];
    for (int l = mlp->layers - 1; l >= 0; l--) {
        const int in = mlp->width[l], out = mlp->width[l + 1], last = l + 1 == mlp->layers;
        const float *weight = mlp->weight[l];
        vec *gw = grad_w + mlp->weight_offset[l], *gb = grad_b + mlp->bias_offset[l];
        for (int o = 0; o < out; o++)
            for (int s = 0; s < SUBS; s++)
                dz[o][s] = last ? grad[o][s] : keep_where(chunk->hidden[l][o][s] > 0.0f, grad[o][s]);
        for (int o = 0; o < out; o++) {
            vec b = gb[o];
            for (int s = 0; s < SUBS; s++) b += dz[o][s];
            gb[o] = b;
            for (int i = 0; i < in; i++) {
                vec w = {0};
                for (int s = 0; s < SUBS; s++) w += dz[o][s] * chunk->act[l][i][s];
                gw[o * in + i] += w;
            }
        }
        for (int i = 0; i < in; i++) {
            vec sum[SUBS];
            for (int s = 0; s < SUBS; s++) sum[s] = mlp->residual[l] ? grad[i][s] : (vec){0};
            for (int o = 0; o < out; o++) {
                const float w = weight[o * in + i];
                for (int s = 0; s < SUBS; s++) sum[s] += w * dz[o][s];
            }
            for (int s = 0; s < SUBS; s++) below[i][s] = sum[s];
        }
        memcpy(grad, below, sizeof(vec) * SUBS * (size_t)in);
    }
}

static int check_range(Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi) {
    if (n < 0 || lo < 0 || hi < lo || hi > n) {
        PyErr_SetString(PyExc_ValueError, "mlp: column range outside the matrix");
        return 0;
    }
    return 1;
}

/* forward(x float32 (in, n), n, lo, hi, widths int32, residual uint8, weights float32, biases float32,
   y float32 (out, n) writable): y[:, lo:hi] = mlp(x[:, lo:hi]). */
static PyObject *forward(PyObject *self, PyObject *args) {
    Py_buffer x, widths, residual, weights, biases, y;
    Py_ssize_t n, lo, hi;
    if (!PyArg_ParseTuple(args, "y*nnny*y*y*y*w*", &x, &n, &lo, &hi, &widths, &residual, &weights, &biases, &y))
        return NULL;
    PyObject *result = NULL;
    Mlp mlp;
    Chunk *chunk = NULL;
    if (!parse_mlp(&mlp, &widths, &residual, &weights, &biases) || !check_range(n, lo, hi)) goto done;
    if (x.len != (Py_ssize_t)sizeof(float) * mlp.width[0] * n || y.len != (Py_ssize_t)sizeof(float) * mlp.width[mlp.layers] * n) {
        PyErr_SetString(PyExc_ValueError, "mlp forward: x or y disagree with the widths");
        goto done;
    }
    chunk = aligned_alloc(64, sizeof(Chunk));
    if (!chunk) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = lo; p < hi; p += CHUNK) {
        const Py_ssize_t end = p + CHUNK < hi ? p + CHUNK : hi;
        load_columns(x.buf, n, mlp.width[0], p, end, chunk->act[0]);
        forward_chunk(&mlp, chunk);
        store_columns(y.buf, n, mlp.width[mlp.layers], p, end, chunk->act[mlp.layers]);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(chunk);
    PyBuffer_Release(&x); PyBuffer_Release(&widths); PyBuffer_Release(&residual);
    PyBuffer_Release(&weights); PyBuffer_Release(&biases); PyBuffer_Release(&y);
    return result;
}

/* backward(x float32 (in, n), grad_y float32 (out, n), n, lo, hi, widths, residual, weights, biases,
   grad_x float32 (in, n) writable, grad_w float64 (weights) writable, grad_b float64 (biases) writable):
   grad_x[:, lo:hi] = the inputs' gradient; grad_w and grad_b = the columns' weight and bias gradients. */
static PyObject *backward(PyObject *self, PyObject *args) {
    Py_buffer x, grad_y, widths, residual, weights, biases, grad_x, grad_w, grad_b;
    Py_ssize_t n, lo, hi;
    if (!PyArg_ParseTuple(args, "y*y*nnny*y*y*y*w*w*w*", &x, &grad_y, &n, &lo, &hi, &widths, &residual, &weights,
                          &biases, &grad_x, &grad_w, &grad_b))
        return NULL;
    PyObject *result = NULL;
    Mlp mlp;
    Chunk *chunk = NULL;
    vec *partial_w = NULL, *partial_b = NULL, (*grad)[SUBS] = NULL;
    if (!parse_mlp(&mlp, &widths, &residual, &weights, &biases) || !check_range(n, lo, hi)) goto done;
    const int in = mlp.width[0], out = mlp.width[mlp.layers];
    const Py_ssize_t weight_count = weights.len / (Py_ssize_t)sizeof(float), bias_count = biases.len / (Py_ssize_t)sizeof(float);
    if (x.len != (Py_ssize_t)sizeof(float) * in * n || grad_x.len != x.len ||
        grad_y.len != (Py_ssize_t)sizeof(float) * out * n || grad_w.len != weight_count * (Py_ssize_t)sizeof(double) ||
        grad_b.len != bias_count * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "mlp backward: a buffer disagrees with the widths");
        goto done;
    }
    chunk = aligned_alloc(64, sizeof(Chunk));
    partial_w = aligned_alloc(64, sizeof(vec) * (size_t)weight_count);
    partial_b = aligned_alloc(64, sizeof(vec) * (size_t)bias_count);
    grad = aligned_alloc(64, sizeof(vec) * SUBS * MAX_WIDTH);
    if (!chunk || !partial_w || !partial_b || !grad) { PyErr_NoMemory(); goto done; }
    double *total_w = grad_w.buf, *total_b = grad_b.buf;
    Py_BEGIN_ALLOW_THREADS
    memset(total_w, 0, sizeof(double) * (size_t)weight_count);
    memset(total_b, 0, sizeof(double) * (size_t)bias_count);
    /* Lane sums in float over at most FLUSH chunks, then into the double totals: the float partial sums
       stay short whatever n is. */
    const int FLUSH = 64;
    int since_flush = 0;
    memset(partial_w, 0, sizeof(vec) * (size_t)weight_count);
    memset(partial_b, 0, sizeof(vec) * (size_t)bias_count);
    for (Py_ssize_t p = lo; p < hi; p += CHUNK) {
        const Py_ssize_t end = p + CHUNK < hi ? p + CHUNK : hi;
        load_columns(x.buf, n, in, p, end, chunk->act[0]);
        load_columns(grad_y.buf, n, out, p, end, grad);
        forward_chunk(&mlp, chunk);
        backward_chunk(&mlp, chunk, grad, partial_w, partial_b);
        store_columns(grad_x.buf, n, in, p, end, grad);
        if (++since_flush == FLUSH || end == hi) {
            for (Py_ssize_t k = 0; k < weight_count; k++)
                for (int lane = 0; lane < LANES; lane++) total_w[k] += partial_w[k][lane];
            for (Py_ssize_t k = 0; k < bias_count; k++)
                for (int lane = 0; lane < LANES; lane++) total_b[k] += partial_b[k][lane];
            memset(partial_w, 0, sizeof(vec) * (size_t)weight_count);
            memset(partial_b, 0, sizeof(vec) * (size_t)bias_count);
            since_flush = 0;
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(chunk); free(partial_w); free(partial_b); free(grad);
    PyBuffer_Release(&x); PyBuffer_Release(&grad_y); PyBuffer_Release(&widths); PyBuffer_Release(&residual);
    PyBuffer_Release(&weights); PyBuffer_Release(&biases); PyBuffer_Release(&grad_x);
    PyBuffer_Release(&grad_w); PyBuffer_Release(&grad_b);
    return result;
}

/* Causal contexts of a padded latent grid, (rows + r, width + 2r) float32: contexts[i, y * width + x] =
   padded[y + r + dy_i, x + r + dx_i] for the offsets (dy_i, dx_i), -r <= dy_i <= 0, |dx_i| <= r. Fills
   flat[i] = dy_i * (width + 2r) + dx_i, or sets the error. */
#define MAX_CONTEXT 64
static int context_offsets(Py_buffer *padded, Py_ssize_t rows, Py_ssize_t width, Py_ssize_t radius,
                           Py_buffer *offsets, Py_buffer *contexts, Py_ssize_t flat[MAX_CONTEXT]) {
    const Py_ssize_t stride = width + 2 * radius, count = offsets->len / (Py_ssize_t)(2 * sizeof(int64_t));
    if (rows < 0 || width < 1 || radius < 0 || count > MAX_CONTEXT ||
        offsets->len != count * (Py_ssize_t)(2 * sizeof(int64_t)) ||
        padded->len != (Py_ssize_t)sizeof(float) * (rows + radius) * stride ||
        contexts->len != (Py_ssize_t)sizeof(float) * count * rows * width) {
        PyErr_SetString(PyExc_ValueError, "contexts: grid, offsets or contexts disagree in size");
        return 0;
    }
    const int64_t *offset = offsets->buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t dy = offset[2 * i], dx = offset[2 * i + 1];
        if (dy < -radius || dy > 0 || dx < -radius || dx > radius) {
            PyErr_SetString(PyExc_ValueError, "contexts: an offset reaches outside the padding");
            return 0;
        }
        flat[i] = dy * stride + dx;
    }
    return 1;
}

/* gather_contexts(padded float32, rows, width, radius, offsets int64 (C, 2), contexts float32 (C, rows * width)) */
static PyObject *gather_contexts(PyObject *self, PyObject *args) {
    Py_buffer padded, offsets, contexts;
    Py_ssize_t rows, width, radius;
    if (!PyArg_ParseTuple(args, "y*nnny*w*", &padded, &rows, &width, &radius, &offsets, &contexts)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t offset[MAX_CONTEXT];
    if (!context_offsets(&padded, rows, width, radius, &offsets, &contexts, offset)) goto done;
    const Py_ssize_t stride = width + 2 * radius, count = offsets.len / (Py_ssize_t)(2 * sizeof(int64_t));
    const float *grid = padded.buf;
    float *out = contexts.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        for (Py_ssize_t y = 0; y < rows; y++)
            memcpy(out + (i * rows + y) * width, grid + (y + radius) * stride + radius + offset[i],
                   (size_t)width * sizeof(float));
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&padded); PyBuffer_Release(&offsets); PyBuffer_Release(&contexts);
    return result;
}

/* scatter_contexts(grad float32 (C, rows * width), rows, width, radius, offsets, grad_padded float32 (writable,
   zeroed here)): the gradient of gather_contexts, each context's gradient added back where it was read. */
VECTOR_CLONES
static void scatter_rows(const float *grad, Py_ssize_t count, Py_ssize_t rows, Py_ssize_t width, Py_ssize_t radius,
                         const Py_ssize_t *offset, float *target) {
    const Py_ssize_t stride = width + 2 * radius;
    for (Py_ssize_t i = 0; i < count; i++)
        for (Py_ssize_t y = 0; y < rows; y++) {
            const float *from = grad + (i * rows + y) * width;
            float *to = target + (y + radius) * stride + radius + offset[i];
            for (Py_ssize_t x = 0; x < width; x++) to[x] += from[x];
        }
}

static PyObject *scatter_contexts(PyObject *self, PyObject *args) {
    Py_buffer grad, offsets, grad_padded;
    Py_ssize_t rows, width, radius;
    if (!PyArg_ParseTuple(args, "y*nnny*w*", &grad, &rows, &width, &radius, &offsets, &grad_padded)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t offset[MAX_CONTEXT];
    if (!context_offsets(&grad_padded, rows, width, radius, &offsets, &grad, offset)) goto done;
    Py_BEGIN_ALLOW_THREADS
    memset(grad_padded.buf, 0, (size_t)grad_padded.len);
    scatter_rows(grad.buf, offsets.len / (Py_ssize_t)(2 * sizeof(int64_t)), rows, width, radius, offset, grad_padded.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&grad); PyBuffer_Release(&offsets); PyBuffer_Release(&grad_padded);
    return result;
}

/* The gradient of one tap over a row: to[q] += tap * grad[q] (the input's gradient where the tap read
   from[q]), and the tap's own gradient, sum of grad[q] * from[q], returned (lane partial sums: a vector
   loop, where one float sum would be a dependency chain). */
static inline __attribute__((always_inline)) float tap_backward(float tap, const float *grad, const float *from, float *to, Py_ssize_t count) {
    vec sums = {0};
    Py_ssize_t q = 0;
    for (; q + LANES <= count; q += LANES) {
        vec g, v, d;
        memcpy(&g, grad + q, sizeof g);
        memcpy(&v, from + q, sizeof v);
        memcpy(&d, to + q, sizeof d);
        d += tap * g;
        memcpy(to + q, &d, sizeof d);
        sums += g * v;
    }
    float sum = 0.0f;
    for (; q < count; q++) {
        to[q] += tap * grad[q];
        sum += grad[q] * from[q];
    }
    for (int lane = 0; lane < LANES; lane++) sum += sums[lane];
    return sum;
}

/* The 2x upsampling (vcodec/model/upsampling.py): each channel of x (h, w) padded by 2 replicated samples,
   transposed-convolved with the 8x8 kernel at stride 2, cropped from 7: output (y, x) sums
   kernel[ky][kx] * padded[(y + 7 - ky) / 2][(x + 7 - kx) / 2] over the 4 x 4 taps of its parity. Within an
   output row, the columns of one parity (x = 2q + b) read padded columns q + (b + 7 - kx) / 2: contiguous
   in q, so each tap is one vector multiply-add over the row. */
#define UP_BORDER 2
#define UP_CROP 7
#define UP_TAPS 8

/* The replicate-padded plane of one channel, (h + 4) x (w + 4). */
static void pad_plane(const float *x, Py_ssize_t h, Py_ssize_t w, float *padded) {
    const Py_ssize_t stride = w + 2 * UP_BORDER;
    for (Py_ssize_t i = 0; i < h + 2 * UP_BORDER; i++) {
        const Py_ssize_t source = i < UP_BORDER ? 0 : (i - UP_BORDER >= h ? h - 1 : i - UP_BORDER);
        const float *line = x + source * w;
        float *row = padded + i * stride;
        for (Py_ssize_t j = 0; j < UP_BORDER; j++) row[j] = line[0];
        memcpy(row + UP_BORDER, line, (size_t)w * sizeof(float));
        for (Py_ssize_t j = UP_BORDER + w; j < stride; j++) row[j] = line[w - 1];
    }
}

/* The taps of output index y (a row or a column): tap[k] and the padded index offset of each. */
static inline void taps_of(Py_ssize_t y, int tap[4], Py_ssize_t source[4]) {
    const int first = (int)((y + UP_CROP) & 1); /* taps of the same parity as y + 7 */
    for (int k = 0; k < 4; k++) {
        tap[k] = first + 2 * k;
        source[k] = (y + UP_CROP - tap[k]) / 2;
    }
}

static int check_upsampling(Py_buffer *x, Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w, Py_buffer *kernel,
                            Py_buffer *y, Py_ssize_t height, Py_ssize_t width, Py_ssize_t c0, Py_ssize_t c1) {
    if (channels < 1 || h < 1 || w < 1 || height < 1 || width < 1 || height > 2 * h || width > 2 * w ||
        x->len != (Py_ssize_t)sizeof(float) * channels * h * w || kernel->len != (Py_ssize_t)sizeof(float) * UP_TAPS * UP_TAPS ||
        y->len != (Py_ssize_t)sizeof(float) * channels * height * width || c0 < 0 || c1 < c0 || c1 > channels) {
        PyErr_SetString(PyExc_ValueError, "upsample: input, kernel, output or channel range disagree in size");
        return 0;
    }
    return 1;
}

/* One output row: y_row[2q + b] = sum of the row's 4 taps ky (padded rows) x the 4 column taps of parity b. */
VECTOR_CLONES
static void upsample_row(const float *padded, Py_ssize_t stride, const float *kernel, Py_ssize_t y, Py_ssize_t width,
                         float *phase, float *out) {
    int row_tap[4];
    Py_ssize_t source_row[4];
    taps_of(y, row_tap, source_row);
    for (int b = 0; b < 2; b++) {
        const Py_ssize_t count = (width - b + 1) / 2;
        int column_tap[4];
        Py_ssize_t shift[4];
        taps_of(b, column_tap, shift); /* column 2q + b reads padded column q + shift[k] */
        for (Py_ssize_t q = 0; q < count; q++) phase[q] = 0.0f;
        for (int r = 0; r < 4; r++) {
            const float *line = padded + source_row[r] * stride;
            for (int k = 0; k < 4; k++) {
                const float tap = kernel[row_tap[r] * UP_TAPS + column_tap[k]];
                const float *from = line + shift[k];
                for (Py_ssize_t q = 0; q < count; q++) phase[q] += tap * from[q];
            }
        }
        for (Py_ssize_t q = 0; q < count; q++) out[2 * q + b] = phase[q];
    }
}

/* upsample(x float32 (C, h, w), channels, h, w, kernel float32 (8, 8), y float32 (C, height, width) writable,
   height, width, c0, c1): channels [c0, c1) of y. */
static PyObject *upsample(PyObject *self, PyObject *args) {
    Py_buffer x, kernel, y;
    Py_ssize_t channels, h, w, height, width, c0, c1;
    if (!PyArg_ParseTuple(args, "y*nnny*w*nnnn", &x, &channels, &h, &w, &kernel, &y, &height, &width, &c0, &c1))
        return NULL;
    PyObject *result = NULL;
    float *padded = NULL, *phase = NULL;
    if (!check_upsampling(&x, channels, h, w, &kernel, &y, height, width, c0, c1)) goto done;
    const Py_ssize_t stride = w + 2 * UP_BORDER;
    padded = malloc(sizeof(float) * (size_t)((h + 2 * UP_BORDER) * stride));
    phase = malloc(sizeof(float) * (size_t)(w + 1));
    if (!padded || !phase) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = c0; c < c1; c++) {
        pad_plane((const float *)x.buf + c * h * w, h, w, padded);
        for (Py_ssize_t row = 0; row < height; row++)
            upsample_row(padded, stride, kernel.buf, row, width, phase, (float *)y.buf + (c * height + row) * width);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(padded); free(phase);
    PyBuffer_Release(&x); PyBuffer_Release(&kernel); PyBuffer_Release(&y);
    return result;
}

/* One output row's gradient: into the padded plane's gradient (each tap's contribution added back where it
   was read) and the kernel's (each tap's products with the samples it read), in double. */
VECTOR_CLONES
static void upsample_row_backward(const float *padded, float *grad_padded, Py_ssize_t stride, const float *kernel,
                                  Py_ssize_t y, Py_ssize_t width, const float *grad_row, float *phase,
                                  double grad_kernel[UP_TAPS * UP_TAPS]) {
    int row_tap[4];
    Py_ssize_t source_row[4];
    taps_of(y, row_tap, source_row);
    for (int b = 0; b < 2; b++) {
        const Py_ssize_t count = (width - b + 1) / 2;
        int column_tap[4];
        Py_ssize_t shift[4];
        taps_of(b, column_tap, shift);
        for (Py_ssize_t q = 0; q < count; q++) phase[q] = grad_row[2 * q + b];
        for (int r = 0; r < 4; r++) {
            const float *line = padded + source_row[r] * stride;
            float *grad_line = grad_padded + source_row[r] * stride;
            for (int k = 0; k < 4; k++) {
                const int t = row_tap[r] * UP_TAPS + column_tap[k];
                grad_kernel[t] += tap_backward(kernel[t], phase, line + shift[k], grad_line + shift[k], count);
            }
        }
    }
}

/* upsample_backward(x, channels, h, w, kernel, grad_y float32 (C, height, width), height, width, c0, c1,
   grad_x float32 (C, h, w) writable, grad_kernel float64 (64) writable): channels [c0, c1) of grad_x, and
   their share of the kernel's gradient. */
static PyObject *upsample_backward(PyObject *self, PyObject *args) {
    Py_buffer x, kernel, grad_y, grad_x, grad_kernel;
    Py_ssize_t channels, h, w, height, width, c0, c1;
    if (!PyArg_ParseTuple(args, "y*nnny*y*nnnnw*w*", &x, &channels, &h, &w, &kernel, &grad_y, &height, &width, &c0,
                          &c1, &grad_x, &grad_kernel))
        return NULL;
    PyObject *result = NULL;
    float *padded = NULL, *grad_padded = NULL, *phase = NULL;
    if (!check_upsampling(&x, channels, h, w, &kernel, &grad_y, height, width, c0, c1)) goto done;
    if (grad_x.len != x.len || grad_kernel.len != (Py_ssize_t)sizeof(double) * UP_TAPS * UP_TAPS) {
        PyErr_SetString(PyExc_ValueError, "upsample_backward: gradient buffers disagree in size");
        goto done;
    }
    const Py_ssize_t stride = w + 2 * UP_BORDER, padded_size = (h + 2 * UP_BORDER) * stride;
    padded = malloc(sizeof(float) * (size_t)padded_size);
    grad_padded = malloc(sizeof(float) * (size_t)padded_size);
    phase = malloc(sizeof(float) * (size_t)(w + 1));
    if (!padded || !grad_padded || !phase) { PyErr_NoMemory(); goto done; }
    double *kernel_sum = grad_kernel.buf;
    Py_BEGIN_ALLOW_THREADS
    memset(kernel_sum, 0, sizeof(double) * UP_TAPS * UP_TAPS);
    for (Py_ssize_t c = c0; c < c1; c++) {
        pad_plane((const float *)x.buf + c * h * w, h, w, padded);
        memset(grad_padded, 0, sizeof(float) * (size_t)padded_size);
        for (Py_ssize_t row = 0; row < height; row++)
            upsample_row_backward(padded, grad_padded, stride, kernel.buf, row, width,
                                  (const float *)grad_y.buf + (c * height + row) * width, phase, kernel_sum);
        /* the replicated border's gradient goes to the edge samples it copied */
        float *gx = (float *)grad_x.buf + c * h * w;
        memset(gx, 0, sizeof(float) * (size_t)(h * w));
        for (Py_ssize_t i = 0; i < h + 2 * UP_BORDER; i++) {
            const Py_ssize_t target = i < UP_BORDER ? 0 : (i - UP_BORDER >= h ? h - 1 : i - UP_BORDER);
            const float *row = grad_padded + i * stride;
            float *line = gx + target * w;
            for (Py_ssize_t j = 0; j < stride; j++) {
                const Py_ssize_t column = j < UP_BORDER ? 0 : (j - UP_BORDER >= w ? w - 1 : j - UP_BORDER);
                line[column] += row[j];
            }
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(padded); free(grad_padded); free(phase);
    PyBuffer_Release(&x); PyBuffer_Release(&kernel); PyBuffer_Release(&grad_y);
    PyBuffer_Release(&grad_x); PyBuffer_Release(&grad_kernel);
    return result;
}

/* The synthesis' 3x3 residual blocks (vcodec/model/synthesis.py) on C planes (H, W):
   out = x + bias + conv3x3(branch), branch = x or relu(x), its borders replicated by one sample. Each
   output row sums, per (input plane, tap), one vector multiply-add over a padded input row. */
#define RES_MAX_PLANES 4

/* The branch plane padded by one replicated sample on each side, (H + 2) x (W + 2). */
static void pad_branch(const float *x, Py_ssize_t h, Py_ssize_t w, int relu, float *padded) {
    const Py_ssize_t stride = w + 2;
    for (Py_ssize_t i = 0; i < h + 2; i++) {
        const Py_ssize_t source = i == 0 ? 0 : (i > h ? h - 1 : i - 1);
        const float *line = x + source * w;
        float *row = padded + i * stride;
        memcpy(row + 1, line, (size_t)w * sizeof(float));
        row[0] = line[0];
        row[w + 1] = line[w - 1];
        if (relu)
            for (Py_ssize_t j = 0; j < stride; j++) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
    }
}

static int check_residual(Py_buffer *x, Py_ssize_t planes, Py_ssize_t h, Py_ssize_t w, Py_buffer *weight,
                          Py_buffer *bias, Py_buffer *y) {
    if (planes < 1 || planes > RES_MAX_PLANES || h < 1 || w < 1 ||
        x->len != (Py_ssize_t)sizeof(float) * planes * h * w || y->len != x->len ||
        weight->len != (Py_ssize_t)sizeof(float) * planes * planes * 9 || bias->len != (Py_ssize_t)sizeof(float) * planes) {
        PyErr_SetString(PyExc_ValueError, "residual3x3: planes, weights or output disagree in size");
        return 0;
    }
    return 1;
}

VECTOR_CLONES
static void residual_rows(const float *padded, Py_ssize_t planes, Py_ssize_t h, Py_ssize_t w, const float *weight,
                          const float *bias, const float *x, float *y) {
    const Py_ssize_t stride = w + 2, plane_size = (h + 2) * stride;
    for (Py_ssize_t o = 0; o < planes; o++)
        for (Py_ssize_t row = 0; row < h; row++) {
            float *out = y + (o * h + row) * w;
            const float *identity = x + (o * h + row) * w;
            for (Py_ssize_t j = 0; j < w; j++) out[j] = identity[j] + bias[o];
            for (Py_ssize_t i = 0; i < planes; i++)
                for (int ky = 0; ky < 3; ky++) {
                    const float *line = padded + i * plane_size + (row + ky) * stride;
                    for (int kx = 0; kx < 3; kx++) {
                        const float tap = weight[((o * planes + i) * 3 + ky) * 3 + kx];
                        const float *from = line + kx;
                        for (Py_ssize_t j = 0; j < w; j++) out[j] += tap * from[j];
                    }
                }
        }
}

/* residual3x3(x float32 (P, H, W), planes, h, w, relu, weight float32 (P, P, 3, 3), bias float32 (P),
   y float32 (P, H, W) writable) */
static PyObject *residual3x3(PyObject *self, PyObject *args) {
    Py_buffer x, weight, bias, y;
    Py_ssize_t planes, h, w;
    int relu;
    if (!PyArg_ParseTuple(args, "y*nnnpy*y*w*", &x, &planes, &h, &w, &relu, &weight, &bias, &y)) return NULL;
    PyObject *result = NULL;
    float *padded = NULL;
    if (!check_residual(&x, planes, h, w, &weight, &bias, &y)) goto done;
    padded = malloc(sizeof(float) * (size_t)(planes * (h + 2) * (w + 2)));
    if (!padded) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < planes; i++)
        pad_branch((const float *)x.buf + i * h * w, h, w, relu, padded + i * (h + 2) * (w + 2));
    residual_rows(padded, planes, h, w, weight.buf, bias.buf, x.buf, y.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(padded);
    PyBuffer_Release(&x); PyBuffer_Release(&weight); PyBuffer_Release(&bias); PyBuffer_Release(&y);
    return result;
}

/* The padded branch's gradient (each tap's weight times the output's gradient, added where the tap read)
   and the weights' (the output's gradient times the samples each tap read, lane sums in double). */
VECTOR_CLONES
static void residual_rows_backward(const float *padded, float *grad_padded, Py_ssize_t planes, Py_ssize_t h,
                                   Py_ssize_t w, const float *weight, const float *grad_y, double *grad_weight,
                                   double *grad_bias) {
    const Py_ssize_t stride = w + 2, plane_size = (h + 2) * stride;
    for (Py_ssize_t o = 0; o < planes; o++)
        for (Py_ssize_t row = 0; row < h; row++) {
            const float *g = grad_y + (o * h + row) * w;
            double bias_sum = 0.0;
            for (Py_ssize_t j = 0; j < w; j++) bias_sum += g[j];
            grad_bias[o] += bias_sum;
            for (Py_ssize_t i = 0; i < planes; i++)
                for (int ky = 0; ky < 3; ky++) {
                    const float *line = padded + i * plane_size + (row + ky) * stride;
                    float *grad_line = grad_padded + i * plane_size + (row + ky) * stride;
                    for (int kx = 0; kx < 3; kx++) {
                        const Py_ssize_t t = ((o * planes + i) * 3 + ky) * 3 + kx;
                        grad_weight[t] += tap_backward(weight[t], g, line + kx, grad_line + kx, w);
                    }
                }
        }
}

/* residual3x3_backward(x, planes, h, w, relu, weight, grad_y float32 (P, H, W), grad_x float32 writable,
   grad_weight float64 (P * P * 9) writable, grad_bias float64 (P) writable) */
static PyObject *residual3x3_backward(PyObject *self, PyObject *args) {
    Py_buffer x, weight, grad_y, grad_x, grad_weight, grad_bias;
    Py_ssize_t planes, h, w;
    int relu;
    if (!PyArg_ParseTuple(args, "y*nnnpy*y*w*w*w*", &x, &planes, &h, &w, &relu, &weight, &grad_y, &grad_x,
                          &grad_weight, &grad_bias))
        return NULL;
    PyObject *result = NULL;
    float *padded = NULL, *grad_padded = NULL;
    if (planes < 1 || planes > RES_MAX_PLANES || h < 1 || w < 1 || x.len != (Py_ssize_t)sizeof(float) * planes * h * w ||
        grad_y.len != x.len || grad_x.len != x.len || weight.len != (Py_ssize_t)sizeof(float) * planes * planes * 9 ||
        grad_weight.len != (Py_ssize_t)sizeof(double) * planes * planes * 9 ||
        grad_bias.len != (Py_ssize_t)sizeof(double) * planes) {
        PyErr_SetString(PyExc_ValueError, "residual3x3_backward: planes, weights or gradients disagree in size");
        goto done;
    }
    const Py_ssize_t stride = w + 2, plane_size = (h + 2) * stride;
    padded = malloc(sizeof(float) * (size_t)(planes * plane_size));
    grad_padded = calloc((size_t)(planes * plane_size), sizeof(float));
    if (!padded || !grad_padded) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    const float *xs = x.buf, *gy = grad_y.buf;
    float *gx = grad_x.buf;
    memset(grad_weight.buf, 0, (size_t)grad_weight.len);
    memset(grad_bias.buf, 0, (size_t)grad_bias.len);
    for (Py_ssize_t i = 0; i < planes; i++) pad_branch(xs + i * h * w, h, w, relu, padded + i * plane_size);
    residual_rows_backward(padded, grad_padded, planes, h, w, weight.buf, gy, grad_weight.buf, grad_bias.buf);
    /* fold the replicated border back onto the edge samples, through the ReLU, plus the identity's gradient */
    for (Py_ssize_t i = 0; i < planes; i++) {
        const float *gp = grad_padded + i * plane_size;
        float *plane = gx + i * h * w;
        memset(plane, 0, sizeof(float) * (size_t)(h * w));
        for (Py_ssize_t r = 0; r < h + 2; r++) {
            float *line = plane + (r == 0 ? 0 : (r > h ? h - 1 : r - 1)) * w;
            const float *from = gp + r * stride;
            for (Py_ssize_t j = 0; j < w; j++) line[j] += from[j + 1];
            line[0] += from[0];
            line[w - 1] += from[w + 1];
        }
        const float *source = xs + i * h * w, *identity = gy + i * h * w;
        for (Py_ssize_t k = 0; k < h * w; k++)
            plane[k] = identity[k] + (relu && source[k] <= 0.0f ? 0.0f : plane[k]);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(padded); free(grad_padded);
    PyBuffer_Release(&x); PyBuffer_Release(&weight); PyBuffer_Release(&grad_y); PyBuffer_Release(&grad_x);
    PyBuffer_Release(&grad_weight); PyBuffer_Release(&grad_bias);
    return result;
}

static PyMethodDef methods[] = {
    {"forward", forward, METH_VARARGS, "y[:, lo:hi] = the MLP of x[:, lo:hi] (float32, channels first)."},
    {"backward", backward, METH_VARARGS, "The input, weight and bias gradients of columns lo:hi."},
    {"gather_contexts", gather_contexts, METH_VARARGS, "Causal contexts (C, rows * width) of a padded grid."},
    {"scatter_contexts", scatter_contexts, METH_VARARGS, "The padded grid's gradient from its contexts'."},
    {"upsample", upsample, METH_VARARGS, "Channels c0:c1 of the 2x upsampling of (C, h, w) float32."},
    {"upsample_backward", upsample_backward, METH_VARARGS, "The input's and the kernel's gradient of upsample."},
    {"residual3x3", residual3x3, METH_VARARGS, "x + bias + conv3x3(branch) of (P, H, W) float32 planes."},
    {"residual3x3_backward", residual3x3_backward, METH_VARARGS, "The gradients of residual3x3."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_training_kernels", "Training's float32 kernels: pointwise MLPs, causal contexts, upsampling.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__training_kernels(void) { return PyModule_Create(&module); }
