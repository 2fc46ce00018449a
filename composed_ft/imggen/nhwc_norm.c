/* Instance norm (no affine) followed by ReLU / LeakyReLU, forward and backward, over channels-last float32
 * tensors seen as (batch, pixels, channels) with the channels contiguous. Built once per machine by
 * instance_norm.py (cc -O3 -march=native) and called through ctypes on a range of batch items; the loops
 * over channels are the inner ones, so the compiler vectorizes them, and one item's pixels stay in cache
 * across the passes.
 *
 * Forward, per (item, channel): mean and biased variance over the pixels (two passes, as torch),
 * y = (x - mean) * rstd, out = y > 0 ? y : slope * y (slope 0: ReLU).
 * Backward: gy = out's gradient through the activation; dx = rstd * (gy - mean(gy) - y * mean(gy * y)),
 * with y recomputed from x, mean and rstd. */
#include <math.h>
#include <stdint.h>

void inorm_act_forward(const float *x, float *out, float *mean, float *rstd, int64_t n_items, int64_t n_pix,
                       int64_t n_ch, float eps, float slope)
{
    float s[n_ch], m[n_ch], r[n_ch];
    for (int64_t b = 0; b < n_items; b++) {
        const float *xb = x + b * n_pix * n_ch;
        float *ob = out + b * n_pix * n_ch;
        for (int64_t k = 0; k < n_ch; k++) s[k] = 0.f;
        for (int64_t i = 0; i < n_pix; i++)
            for (int64_t k = 0; k < n_ch; k++) s[k] += xb[i * n_ch + k];
        for (int64_t k = 0; k < n_ch; k++) { m[k] = s[k] / (float)n_pix; s[k] = 0.f; }
        for (int64_t i = 0; i < n_pix; i++)
            for (int64_t k = 0; k < n_ch; k++) { float d = xb[i * n_ch + k] - m[k]; s[k] += d * d; }
        for (int64_t k = 0; k < n_ch; k++) {
            r[k] = 1.f / sqrtf(s[k] / (float)n_pix + eps);
            mean[b * n_ch + k] = m[k];
            rstd[b * n_ch + k] = r[k];
        }
        for (int64_t i = 0; i < n_pix; i++)
            for (int64_t k = 0; k < n_ch; k++) {
                float y = (xb[i * n_ch + k] - m[k]) * r[k];
                ob[i * n_ch + k] = y > 0.f ? y : slope * y;
            }
    }
}

/* g: the output's gradient at g + b * g_item + i * g_pix + k (its channels contiguous, e.g. a channel slice of
 * a concatenation's gradient); dx: contiguous like x. */
void inorm_act_backward(const float *x, const float *g, int64_t g_item, int64_t g_pix, const float *mean,
                        const float *rstd, float *dx, int64_t n_items, int64_t n_pix, int64_t n_ch, float slope)
{
    float s1[n_ch], s2[n_ch];
    for (int64_t b = 0; b < n_items; b++) {
        const float *xb = x + b * n_pix * n_ch, *gb = g + b * g_item, *m = mean + b * n_ch, *r = rstd + b * n_ch;
        float *db = dx + b * n_pix * n_ch;
        for (int64_t k = 0; k < n_ch; k++) { s1[k] = 0.f; s2[k] = 0.f; }
        for (int64_t i = 0; i < n_pix; i++)
            for (int64_t k = 0; k < n_ch; k++) {
                float y = (xb[i * n_ch + k] - m[k]) * r[k], gv = gb[i * g_pix + k];
                float gy = y > 0.f ? gv : slope * gv;
                s1[k] += gy;
                s2[k] += gy * y;
            }
        for (int64_t k = 0; k < n_ch; k++) { s1[k] /= (float)n_pix; s2[k] /= (float)n_pix; }
        for (int64_t i = 0; i < n_pix; i++)
            for (int64_t k = 0; k < n_ch; k++) {
                float y = (xb[i * n_ch + k] - m[k]) * r[k], gv = gb[i * g_pix + k];
                float gy = y > 0.f ? gv : slope * gv;
                db[i * n_ch + k] = r[k] * (gy - s1[k] - y * s2[k]);
            }
    }
}
