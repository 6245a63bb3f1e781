/* align.h — `moco-train align`: run S MoCo steps on given inputs and write everything a
 * reference implementation can be compared against (DESIGN §4, "Alignment mode").
 *
 *   [mpirun -np R] moco-train align --config C --state IN.safetensors --batch B.safetensors
 *                    --out OUT.safetensors [--set key.path=value ...] [--rank-states DIR]
 * lr held at optim.lr; the batch size and image size come from B. Under mpirun B holds the
 * global batch (rank r takes rows [r·N/R, (r+1)·N/R)), B's optional `perm` [S, N] is rank 0's
 * shuffle permutation of each step, and rank 0 writes OUT with the global loss (mean over
 * ranks), every rank's logits/q/k rows in global order and the averaged gradients.
 * --rank-states DIR: every rank writes DIR/rank<r>-step<s>.safetensors (its full MoCo state)
 * after each step, so tests can check that all ranks hold the same model and queue.
 */
#ifndef MOCO_ALIGN_H
#define MOCO_ALIGN_H

/* argv[0] is "align". Returns the process exit status. */
int align_main(int argc, char **argv);

#endif
