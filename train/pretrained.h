/* pretrained.h — loading a pretrained backbone (model.pretrained) for lincls and kNN.
 *
 * Accepted files (safetensors, told apart by __metadata__ "format"):
 *   "mocod-checkpoint"  a pretraining checkpoint: the backbone is encoder_q.<name>; encoder_k.*,
 *                       queue, queue_ptr, optim.* and encoder_q.fc.* (the projection head)
 *                       are ignored;
 *   "mocod-backbone"    a backbone export (`moco-train --export backbone`), or an official
 *                       PyTorch checkpoint converted by `tools/convert_checkpoint.py from-torch`:
 *                       torchvision names without prefix;
 *   "mocod-lincls"      a linear-evaluation checkpoint: its backbone (fc.* ignored).
 * A folder stands for its newest ckpt-*.safetensors (checkpoint_newest).
 *
 * Any other format (a raw PyTorch state dict, a file without metadata) is refused with a
 * message that lists the accepted formats and how to convert a PyTorch .pth.tar.
 */
#ifndef MOCO_PRETRAINED_H
#define MOCO_PRETRAINED_H

#include <stddef.h>

#include "train/config.h"
#include "train/params.h"
#include "train/safetensors.h"

#define PRETRAINED_FORMAT_BACKBONE "mocod-backbone"
#define PRETRAINED_FORMAT_LINCLS "mocod-lincls"

typedef struct {
    StFile st;
    char file[CONFIG_PATH_MAX + 256]; /* the file actually read (a folder's newest checkpoint) */
    const char *prefix;               /* "encoder_q." for a pretraining checkpoint, else "" */
    const char *format;               /* the metadata format, one of the accepted three */
} PretrainedFile;

/* The file that path stands for: path itself, or a folder's newest ckpt-*.safetensors. Callers
 * that read the file again later (the sanity check) keep this name, since a running
 * pretraining may add newer checkpoints to the folder meanwhile. 0, or -1 with err. */
int pretrained_resolve(const char *path, char *file, size_t len, char *err, size_t errlen);
/* Opens and identifies path (a file or a folder). 0, or -1 with err naming the path. */
int pretrained_open(const char *path, PretrainedFile *pf, char *err, size_t errlen);
void pretrained_close(PretrainedFile *pf);
/* The file's tensor for a torchvision name (prefix added), or NULL. */
const StTensor *pretrained_find(const PretrainedFile *pf, const char *name);
/* "resnet18 with the CIFAR stem (conv1.weight [64, 3, 3, 3])": what the file seems to hold,
 * from its tensors' names and shapes. */
void pretrained_describe(const PretrainedFile *pf, char *buf, size_t len);

/* Loads the backbone of the file at path into ps, a torchvision-named ParamSet of a ResNet
 * (names without prefix, finalized). Every tensor of ps except fc.* must be in the file with
 * the same shape (PyTorch layout: conv weights OIHW, converted here into the backend's
 * layout) and dtype (F32; num_batches_tracked I64 []); the file's other tensors are ignored
 * and ps's fc.* tensors, if any, are left as they are. On failure nothing is guaranteed about
 * ps's contents and err names the tensor, the file, and what model the file seems to hold
 * (so that model.arch / model.cifar_stem can be set to match). 0, or -1. */
int pretrained_load_backbone(const char *path, ParamSet *ps, char *err, size_t errlen);

#endif
