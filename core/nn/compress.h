#pragma once
// Compression of a trained Model: quantisation-aware fine-tuning (FakeQuantForward in the loop,
// core/nn/qat.h) and iterative magnitude pruning (core/compress/prune.h), with one record per
// (bits, round) and the chosen result as a quantised model folder (docs/compress.md, "The
// compress verb"). Torch-free header.
//
// Contract:
//  - For every bits value (2..16): the formats are calibrated on the float start model
//    (calibratedQuantSpec over up to calibrationPatches training patches, margin 1), the start
//    weights are fine-tuned with QAT for epochsPerRound epochs (round 0), then for each of
//    pruneRounds rounds pruneFraction of the remaining weights (global L1, or whole output
//    channels when structured) is pruned and the net fine-tuned again. Pruned weights are
//    exactly 0 throughout (the masks are re-applied after every optimiser step).
//  - Every record is measured with the exact integer reference (IntegerReference): validation
//    and test mean distance, standard BOPs with per-layer bits and real zeros (quantisedCost).
//  - Chosen: the smallest BOPs whose validation distance is <= targetDistance; with no target
//    or none within it, the best validation distance.
//  - The chosen model carries quantization (QuantSpec JSON), recipe["pruning"] (the masks) and
//    recipe["compress"]; its metrics' validation / test are integer-reference distances, which
//    evaluateQuantised reproduces from the saved folder.
//  - Errors: InputError naming the option / file; CancelledError when monitor is cancelled.
//    Not thread-safe with respect to the start model (read only) across concurrent calls.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/common/progress.h"
#include "core/compress/prune.h"
#include "core/compress/quantspec.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"

namespace braggnac::core {

struct CompressOptions {
    std::vector<int> bits{8};      // each 2..16 (the exact QAT path; 17..32 rejected, see validate)
    int pruneRounds = 0;
    double pruneFraction = 0.2;    // of the remaining weights per round, in (0, 1)
    bool structured = false;       // whole output channels instead of single weights
    double targetDistance = 0;     // px; <= 0: none
    int epochsPerRound = 1;        // QAT fine-tuning epochs after calibration and after each round
    TrainOptions train;            // optimizer, learningRate, batchSize, seed, threads (epochs unused)
    int calibrationPatches = 1024;
    int margin = 1;                // extra integer bits of the calibrated activations
    /// Throws InputError("<source>: <field>: ...").
    void validate(const std::string &source = "compress options") const;
    nlohmann::json toJson() const;
};

struct CompressRecord {
    int bits = 0;
    int round = 0;                 // 0 = QAT only; r = after r pruning rounds
    double sparsity = 0;           // pruned fraction of the conv / linear weights
    double bops = 0;               // quantisedCost (standard convention, real zeros)
    std::int64_t params = 0;       // non-zero quantised weights + biases (quantisedCost params)
    double validation = 0, test = 0; // mean distance (px), integer reference; NaN when the split is empty
    nlohmann::json toJson() const;
};

struct CompressResult {
    std::vector<CompressRecord> records;
    int chosen = -1;               // index into records
    std::shared_ptr<Model> model;  // the chosen model, ready to save
    nlohmann::json toJson() const; // {"records": [...], "chosen": {...record..., "index"}}
};

CompressResult compressModel(const Model &start, const PatchDataset &data, const CompressOptions &options,
                             const Monitor &monitor = {},
                             const std::function<void(const CompressRecord &)> &onRecord = {});

/// Fine-tunes `model` in place for `epochs` epochs on the train split: with `spec` (non-null)
/// through the fake-quantised forward (batch norm frozen and folded), else the float forward.
/// Pruned weights (masks) are set to 0 before training and after every optimiser step.
void fineTune(Model &model, const PatchDataset &data, const QuantSpec *spec, const PruneMasks &masks,
              int epochs, const TrainOptions &options, const Monitor &monitor = {});

/// The model folder's quantisation spec (Model::quantization in the QuantSpec format) and masks
/// (recipe["pruning"]["masks"]; all kept when absent). Throw InputError naming `source`.
QuantSpec modelQuantSpec(const Model &model, const std::string &source = "quantization.json");
PruneMasks modelMasks(const Model &model, const std::string &source = "recipe.json");
/// True when Model::quantization holds a QuantSpec (format "braggnac-quantization").
bool hasQuantSpec(const Model &model);

/// Evaluation of a quantised model through the integer reference (the fixed engine) on one
/// split (-1 all, 1 validation, 2 test), with the rows evaluateModel uses. InputError as there.
Evaluation evaluateQuantised(const Model &model, const PatchDataset &data, int split, int threads = 1);

} // namespace braggnac::core
