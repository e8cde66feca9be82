#pragma once
// Hand-rolled random architecture specs over the NAC choices, for tests (header-only; not the
// search space sampler). forceOneByOne is on, so every sample is a valid spec.
#include <random>
#include <string>

#include "core/arch/archspec.h"

namespace braggnac::test {

inline core::ArchSpec randomArchSpec(std::mt19937 &rng, int index)
{
    using namespace core;
    auto pick = [&](std::initializer_list<int> v) {
        std::uniform_int_distribution<std::size_t> d(0, v.size() - 1);
        return *(v.begin() + d(rng));
    };
    auto norm = [&] { return Norm(pick({0, 1, 2})); };
    auto act = [&] { return Activation(pick({0, 1, 2, 3})); };
    ArchSpec s;
    s.name = "random" + std::to_string(index);
    s.inputSize = pick({7, 9, 11});
    s.forceOneByOne = true;
    s.stem = {pick({4, 8, 16}), pick({1, 3}), norm(), act()};
    const int blocks = pick({0, 1, 2, 3});
    for (int b = 0; b < blocks; ++b) {
        BlockSpec block;
        block.type = BlockType(pick({0, 0, 1, 2}));
        if (block.type == BlockType::Conv) {
            const int layers = pick({1, 2});
            for (int l = 0; l < layers; ++l)
                block.layers.push_back({pick({4, 8, 16}), pick({1, 3, 5}), norm(), act()});
        } else if (block.type == BlockType::ConvAttention) {
            block.attentionChannels = pick({2, 4, 8});
            block.act = act();
        }
        s.blocks.push_back(block);
    }
    const int head = pick({0, 1, 2, 3});
    for (int k = 0; k < head; ++k)
        s.head.push_back({pick({4, 8, 16}), norm(), act()});
    return s;
}

} // namespace braggnac::test
