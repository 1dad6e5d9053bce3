/* libFuzzer harness: the IDX reader (worker/data.c), which reads the files
 * found in --data_dir, plain or gzip.
 *   input: 1 byte of options (bit 0: the model takes 28x28 images, else
 *   2x3; bits 1-4: classes - 1), 2 bytes (big-endian) of image-file length,
 *   the image file, then the label file. Each file is written to a memfd
 *   and read through /proc/self/fd/N, the way the worker opens a path.
 *   Accepted -> the shape is the model's, the plain files' sizes are exactly
 *   what the headers say, every label is below the classes, and every pixel
 *   and label is read (the sanitizers see any short buffer) through the
 *   sampler as training would. Refused -> RT_EFORMAT (nothing else can go
 *   wrong with a memfd), nothing left allocated, and one printable line
 *   naming the file.
 * Seeds (corpus/idx/): valid plain and gzip sets, and one file per way to be
 * wrong. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "worker/data.h"

static int image_fd = -1, label_fd = -1;

static void put_file(int fd, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
}

static void check_message(const char *text)
{
    size_t bytes = strlen(text);
    FUZZ_CHECK(bytes > 0);
    FUZZ_CHECK(strstr(text, "/proc/self/fd/") != NULL);
    for (size_t i = 0; i < bytes; i++)
        FUZZ_CHECK(text[i] >= 0x20 && text[i] < 0x7f);
}

static int is_gzip(const uint8_t *data, size_t size)
{
    return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/* Every sample through the sampler, one at a time, as an epoch would. */
static void read_all(const dataset_t *d)
{
    sampler_t s;
    FUZZ_CHECK(sampler_init(&s, d, 0, 1, 1, 1, 7) == 0);
    float sum = 0.0f;
    for (size_t i = 0; i < d->count; i++) {
        const float *x;
        const int32_t *y;
        sampler_batch(&s, i, &x, &y);
        FUZZ_CHECK(*y >= 0 && *y < d->classes);
        for (int j = 0; j < d->h * d->w; j++)
            sum += x[j];
    }
    FUZZ_CHECK(sum == sum);
    sampler_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (image_fd < 0) {
        image_fd = memfd_create("idx-images", 0);
        label_fd = memfd_create("idx-labels", 0);
        FUZZ_CHECK(image_fd >= 0 && label_fd >= 0);
    }
    const dataset_shape_t want = {1, data[0] & 1 ? 28 : 2, data[0] & 1 ? 28 : 3,
                                  1 + ((data[0] >> 1) & 15)};
    size_t image_bytes = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (image_bytes > size)
        image_bytes = size;
    put_file(image_fd, data, image_bytes);
    put_file(label_fd, data + image_bytes, size - image_bytes);
    char images[64], labels[64], err[1536] = "";
    snprintf(images, sizeof images, "/proc/self/fd/%d", image_fd);
    snprintf(labels, sizeof labels, "/proc/self/fd/%d", label_fd);

    dataset_t d;
    int rc = dataset_load_idx(&d, images, labels, &want, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(d.count >= 1 && d.c == 1 && d.h == want.h && d.w == want.w);
        FUZZ_CHECK(d.pixels != NULL && d.labels != NULL);
        size_t per = (size_t)want.h * (size_t)want.w;
        if (!is_gzip(data, image_bytes))
            FUZZ_CHECK(image_bytes == 16 + d.count * per);
        if (!is_gzip(data + image_bytes, size - image_bytes))
            FUZZ_CHECK(size - image_bytes == 8 + d.count);
        read_all(&d);
        dataset_free(&d);
    } else {
        if (rc != RT_EFORMAT)
            fprintf(stderr, "unexpected code %d: %s\n", rc, err);
        FUZZ_CHECK(rc == RT_EFORMAT);
        check_message(err);
        FUZZ_CHECK(d.pixels == NULL && d.labels == NULL);
    }
    return 0;
}
