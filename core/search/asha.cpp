#include "core/search/asha.h"

#include <algorithm>
#include <cmath>

#include "core/common/error.h"

namespace braggnac::core {

Asha::Asha(AshaOptions options) : m_options(std::move(options))
{
    if (m_options.rungs.empty())
        throw InputError("asha.rungs: empty list (give at least one rung in epochs)");
    for (std::size_t i = 0; i < m_options.rungs.size(); ++i) {
        if (m_options.rungs[i] < 1)
            throw InputError("asha.rungs[" + std::to_string(i) + "]: must be at least 1 epoch");
        if (i > 0 && m_options.rungs[i] <= m_options.rungs[i - 1])
            throw InputError("asha.rungs[" + std::to_string(i) + "]: rungs must be strictly increasing");
    }
    if (m_options.reductionFactor < 2)
        throw InputError("asha.reduction_factor: must be at least 2 (got "
                         + std::to_string(m_options.reductionFactor) + ")");
}

void Asha::restore(const std::string &trial, int epoch, double value)
{
    if (!std::binary_search(m_options.rungs.begin(), m_options.rungs.end(), epoch))
        return;
    auto &rung = m_rungs[epoch];
    for (const auto &e : rung)
        if (e.first == trial)
            return;
    rung.emplace_back(trial, value);
    int &reached = m_reached[trial];
    reached = std::max(reached, epoch);
}

bool Asha::report(const std::string &trial, int epoch, double value)
{
    if (!std::binary_search(m_options.rungs.begin(), m_options.rungs.end(), epoch))
        return true;
    restore(trial, epoch, std::isfinite(value) ? value : HUGE_VAL);
    double mine = HUGE_VAL;
    std::vector<double> values;
    for (const auto &e : m_rungs[epoch]) {
        values.push_back(e.second);
        if (e.first == trial)
            mine = e.second;
    }
    std::sort(values.begin(), values.end());
    std::size_t index = values.size() / std::size_t(m_options.reductionFactor);
    index = index == 0 ? 0 : index - 1;
    const bool promote = std::isfinite(mine) && mine <= values[index];
    if (promote) {
        int passed = 0;
        for (int r : m_options.rungs)
            passed += r <= epoch;
        m_passed[trial] = std::max(m_passed[trial], passed);
    } else {
        m_stopped[trial] = true;
    }
    return promote;
}

int Asha::level(const std::string &trial) const
{
    if (!m_stopped.count(trial))
        return int(m_options.rungs.size());
    auto it = m_passed.find(trial);
    return it == m_passed.end() ? 0 : it->second;
}

int Asha::rungReached(const std::string &trial) const
{
    auto it = m_reached.find(trial);
    return it == m_reached.end() ? 0 : it->second;
}

std::vector<double> Asha::rungValues(int rungEpochs) const
{
    std::vector<double> out;
    auto it = m_rungs.find(rungEpochs);
    if (it != m_rungs.end())
        for (const auto &e : it->second)
            out.push_back(e.second);
    return out;
}

std::vector<std::size_t> Asha::highestFidelity(const std::vector<int> &fidelities)
{
    std::vector<std::size_t> out;
    if (fidelities.empty())
        return out;
    const int top = *std::max_element(fidelities.begin(), fidelities.end());
    for (std::size_t i = 0; i < fidelities.size(); ++i)
        if (fidelities[i] == top)
            out.push_back(i);
    return out;
}

} // namespace braggnac::core
