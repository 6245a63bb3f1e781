/* align.h — `moco-train align`: run S MoCo steps on given inputs and write everything a
 * reference implementation can be compared against (DESIGN §4, "Alignment mode").
 *
 *   moco-train align --config C --state IN.safetensors --batch B.safetensors
 *                    --out OUT.safetensors [--set key.path=value ...]
 * Single process; lr held at optim.lr; the batch size and image size come from B.
 */
#ifndef MOCO_ALIGN_H
#define MOCO_ALIGN_H

/* argv[0] is "align". Returns the process exit status. */
int align_main(int argc, char **argv);

#endif
