#pragma once
// INTERNAL (trainer and its tests): pieces of the training loop exposed for testing, torch-free.
#include <cstddef>

#include "core/nn/trainer.h"

namespace braggnac::core {

/// Shift augmentation as the trainer applies it: moves the content of each S x S patch
/// (row-major) by (dy[i], dx[i]) whole pixels (content at (r, c) goes to (r + dy, c + dx)), filling
/// the uncovered border by replicating the nearest edge pixel, and moves its centre label
/// (centers[2i], centers[2i+1], patch coordinates) by the same offset. In place. |dy|, |dx| < S.
/// Runs the same LibTorch kernel as the training loop.
void shiftPatches(float *patches, float *centers, std::size_t n, int size, const int *dy,
                  const int *dx);

/// Learning rate used during `epoch` (0-based) of options.epochs:
///   none: lr; step: lr * gamma^floor(epoch / stepSize); exponential: lr * gamma^epoch;
///   cosine: lr * (1 + cos(pi * epoch / epochs)) / 2 (PyTorch's CosineAnnealingLR, eta_min 0).
double scheduledLearningRate(const TrainOptions &options, int epoch);

} // namespace braggnac::core
