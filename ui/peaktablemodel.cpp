#include "ui/peaktablemodel.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace braggnac::ui {

namespace {
constexpr double kMissing = -std::numeric_limits<double>::infinity();
}

bool PeakResults::hasPrediction(std::size_t i) const
{
    return 2 * i + 1 < predictions.size() && std::isfinite(predictions[2 * i]);
}

void PeakResults::normalise()
{
    const std::size_t n = peaks.size();
    fits.resize(n);
    fitted.resize(n, 0);
    predictions.resize(2 * n, std::numeric_limits<float>::quiet_NaN());
    std::sort(frames.begin(), frames.end());
    frames.erase(std::unique(frames.begin(), frames.end()), frames.end());
}

void PeakResults::merge(PeakResults other)
{
    normalise();
    other.normalise();
    const int s = other.patches.patchSize;
    if (!peaks.empty() && patches.patchSize != s) {
        *this = PeakResults{};
    }
    std::vector<std::size_t> keep;
    for (std::size_t i = 0; i < peaks.size(); ++i)
        if (!std::binary_search(other.frames.begin(), other.frames.end(), peaks[i].frame))
            keep.push_back(i);
    PeakResults out;
    out.patches.patchSize = s;
    const std::size_t area = std::size_t(s) * s;
    const auto append = [&](const PeakResults &from, std::size_t i) {
        out.peaks.push_back(from.peaks[i]);
        out.patches.patches.insert(out.patches.patches.end(), from.patches.patches.begin() + std::ptrdiff_t(i * area),
                                   from.patches.patches.begin() + std::ptrdiff_t((i + 1) * area));
        out.patches.frameIndex.push_back(from.peaks[i].frame);
        out.patches.origin.push_back(from.peaks[i].originRow);
        out.patches.origin.push_back(from.peaks[i].originCol);
        out.fits.push_back(from.fits[i]);
        out.fitted.push_back(from.fitted[i]);
        out.predictions.push_back(from.predictions[2 * i]);
        out.predictions.push_back(from.predictions[2 * i + 1]);
    };
    for (std::size_t i : keep)
        append(*this, i);
    for (std::size_t i = 0; i < other.peaks.size(); ++i)
        append(other, i);
    out.frames = frames;
    out.frames.insert(out.frames.end(), other.frames.begin(), other.frames.end());
    out.normalise();
    *this = std::move(out);
}

PeakTableModel::PeakTableModel(QObject *parent) : QAbstractTableModel(parent) {}

void PeakTableModel::setResults(PeakResults results)
{
    beginResetModel();
    m_results = std::move(results);
    m_results.normalise();
    endResetModel();
}

void PeakTableModel::setFits(const std::vector<std::size_t> &ids, const std::vector<core::FitResult> &fits)
{
    m_results.normalise();
    for (std::size_t k = 0; k < ids.size() && k < fits.size(); ++k) {
        if (ids[k] >= m_results.peaks.size())
            continue;
        m_results.fits[ids[k]] = fits[k];
        m_results.fitted[ids[k]] = 1;
    }
    if (!m_results.peaks.empty())
        Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
}

int PeakTableModel::fittedCount() const
{
    return int(std::count(m_results.fitted.begin(), m_results.fitted.end(), std::uint8_t(1)));
}

int PeakTableModel::convergedCount() const
{
    int n = 0;
    for (std::size_t i = 0; i < m_results.peaks.size(); ++i)
        n += m_results.hasFit(i) && m_results.fits[i].converged;
    return n;
}

int PeakTableModel::predictedCount() const
{
    int n = 0;
    for (std::size_t i = 0; i < m_results.peaks.size(); ++i)
        n += m_results.hasPrediction(i);
    return n;
}

void PeakTableModel::setPredictions(std::vector<float> predictions)
{
    if (!predictions.empty() && predictions.size() != 2 * m_results.peaks.size())
        return;
    m_results.predictions = std::move(predictions);
    m_results.normalise();
    if (!m_results.peaks.empty())
        Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
}

void PeakTableModel::clear()
{
    setResults({});
}

bool PeakTableModel::searched(int frame) const
{
    return std::binary_search(m_results.frames.begin(), m_results.frames.end(), frame);
}

double PeakTableModel::amplitude(int id) const
{
    if (hasFit(id) && m_results.fits[std::size_t(id)].converged)
        return m_results.fits[std::size_t(id)].params.amplitude;
    const core::Peak &p = peak(id);
    return double(p.maxValue) - p.background;
}

bool PeakTableModel::fitCentre(int id, double &row, double &col) const
{
    if (!hasFit(id))
        return false;
    const core::Peak &p = peak(id);
    const core::FitResult &f = m_results.fits[std::size_t(id)];
    row = p.originRow + f.params.row;
    col = p.originCol + f.params.col;
    return true;
}

bool PeakTableModel::predictedCentre(int id, double &row, double &col) const
{
    if (!hasPrediction(id))
        return false;
    const core::Peak &p = peak(id);
    row = p.originRow + double(m_results.predictions[2 * std::size_t(id)]);
    col = p.originCol + double(m_results.predictions[2 * std::size_t(id) + 1]);
    return true;
}

double PeakTableModel::fitToModelDistance(int id) const
{
    double fr, fc, nr, nc;
    if (!fitCentre(id, fr, fc) || !predictedCentre(id, nr, nc))
        return std::numeric_limits<double>::quiet_NaN();
    return std::hypot(fr - nr, fc - nc);
}

int PeakTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : peakCount();
}

int PeakTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant PeakTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= peakCount())
        return {};
    const int id = index.row();
    const core::Peak &p = peak(id);
    const core::FitResult *fit = hasFit(id) ? &m_results.fits[std::size_t(id)] : nullptr;
    double fr = 0, fc = 0, nr = 0, nc = 0;
    const bool hasFit = fitCentre(id, fr, fc);
    const bool hasNN = predictedCentre(id, nr, nc);

    if (role == Qt::TextAlignmentRole)
        return index.column() == Flags ? QVariant(Qt::AlignLeft | Qt::AlignVCenter)
                                       : QVariant(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ToolTipRole && index.column() == Converged && fit)
        return tr("%1 iterations, rms %2").arg(fit->iterations).arg(fit->rms, 0, 'g', 4);
    if (role != Qt::DisplayRole && role != Qt::EditRole && role != Qt::UserRole)
        return {};

    const bool text = role == Qt::DisplayRole;
    const auto number = [&](double v, int decimals) -> QVariant {
        if (role == Qt::UserRole)
            return std::isfinite(v) ? v : kMissing;
        if (!std::isfinite(v))
            return text ? QVariant(QString()) : QVariant();
        return text ? QVariant(QString::number(v, 'f', decimals)) : QVariant(v);
    };
    const auto missing = [&]() -> QVariant { return role == Qt::UserRole ? QVariant(kMissing) : QVariant(); };

    switch (index.column()) {
    case Id:
        return role == Qt::UserRole ? QVariant(double(id)) : QVariant(id);
    case Frame:
        return role == Qt::UserRole ? QVariant(double(p.frame)) : QVariant(p.frame);
    case Row:
        return role == Qt::UserRole ? QVariant(double(p.row)) : QVariant(p.row);
    case Col:
        return role == Qt::UserRole ? QVariant(double(p.col)) : QVariant(p.col);
    case MaxValue:
        return number(p.maxValue, 1);
    case Pixels:
        return role == Qt::UserRole ? QVariant(double(p.pixels)) : QVariant(p.pixels);
    case Amplitude:
        return number(amplitude(id), 1);
    case FitRow:
        return hasFit ? number(fr, 3) : missing();
    case FitCol:
        return hasFit ? number(fc, 3) : missing();
    case Converged:
        if (!fit)
            return missing();
        if (role == Qt::DisplayRole)
            return fit->converged ? tr("yes") : tr("no");
        return fit->converged ? 1.0 : 0.0;
    case Rms:
        return fit ? number(fit->rms, 2) : missing();
    case NNRow:
        return hasNN ? number(nr, 3) : missing();
    case NNCol:
        return hasNN ? number(nc, 3) : missing();
    case Distance:
        return number(fitToModelDistance(id), 3);
    case Flags: {
        QStringList flags;
        if (p.border)
            flags << QStringLiteral("border");
        if (p.merged)
            flags << QStringLiteral("merged");
        if (role == Qt::UserRole)
            return double((p.border ? 1 : 0) + (p.merged ? 2 : 0));
        return flags.join(QLatin1Char(' '));
    }
    default:
        return {};
    }
}

QVariant PeakTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal)
        return {};
    if (role == Qt::ToolTipRole) {
        switch (section) {
        case Row: case Col: return tr("Maximum pixel (frame coordinates)");
        case Amplitude: return tr("Fitted amplitude when fitted, else maximum minus background");
        case FitRow: case FitCol: return tr("Pseudo-Voigt centre (frame coordinates)");
        case NNRow: case NNCol: return tr("Model's predicted centre (frame coordinates)");
        case Distance: return tr("Distance between the fitted and the predicted centre (pixels)");
        default: return {};
        }
    }
    if (role != Qt::DisplayRole)
        return {};
    static const char *const names[ColumnCount] = {
        "#", "Frame", "Row", "Col", "Max", "Pixels", "Amplitude", "Fit row", "Fit col",
        "Converged", "RMS", "NN row", "NN col", "Fit-NN (px)", "Flags"};
    return section >= 0 && section < ColumnCount ? tr(names[section]) : QVariant();
}

PeakFilterProxy::PeakFilterProxy(QObject *parent) : QSortFilterProxyModel(parent)
{
    setSortRole(Qt::UserRole);
}

void PeakFilterProxy::setMinAmplitude(double value)
{
    m_minAmplitude = value;
    invalidateFilter();
}

void PeakFilterProxy::setConvergedOnly(bool on)
{
    m_convergedOnly = on;
    invalidateFilter();
}

void PeakFilterProxy::setMinDistance(double value)
{
    m_minDistance = value;
    invalidateFilter();
}

void PeakFilterProxy::setFrame(int frame)
{
    m_frame = frame;
    invalidateFilter();
}

bool PeakFilterProxy::filterAcceptsRow(int sourceRow, const QModelIndex &) const
{
    const auto *model = qobject_cast<const PeakTableModel *>(sourceModel());
    if (!model || sourceRow >= model->peakCount())
        return false;
    if (m_frame >= 0 && model->peak(sourceRow).frame != m_frame)
        return false;
    if (m_minAmplitude > 0 && !(model->amplitude(sourceRow) >= m_minAmplitude))
        return false;
    if (m_convergedOnly && !(model->hasFit(sourceRow) && model->results().fits[std::size_t(sourceRow)].converged))
        return false;
    if (m_minDistance > 0 && !(model->fitToModelDistance(sourceRow) >= m_minDistance))
        return false;
    return true;
}

bool PeakFilterProxy::lessThan(const QModelIndex &left, const QModelIndex &right) const
{
    const double a = left.data(Qt::UserRole).toDouble();
    const double b = right.data(Qt::UserRole).toDouble();
    if (a != b)
        return a < b;
    return left.row() < right.row();
}

} // namespace braggnac::ui
