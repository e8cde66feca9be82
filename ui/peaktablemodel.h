#pragma once
// The peaks found on one or more frames, with their optional pseudo-Voigt fits and model
// predictions, as a table model (one row per peak, row = peak id), plus the filter proxy the
// peak table shows (minimum amplitude, converged fits only, minimum fit-to-model distance,
// one frame only). Display role: formatted text; EditRole: full-precision numbers (CSV export);
// UserRole: numbers for sorting (missing values sort first). GUI thread only.
#include <memory>
#include <vector>

#include <QAbstractTableModel>
#include <QSortFilterProxyModel>

#include "core/io/patchdataset.h"
#include "core/peaks/finder.h"
#include "core/peaks/fitter.h"

namespace braggnac::ui {

/// Finder output for a set of frames: peaks[i] <-> patch i of `patches` (with /origin and
/// /frame_index filled). Fits and predictions are per peak and optional: `fits` is empty or one
/// per peak with fitted[i] != 0 where fits[i] is valid; `predictions` is empty or 2 per peak
/// (patch coordinates, NaN where not predicted).
struct PeakResults {
    std::vector<core::Peak> peaks;
    core::PatchDataset patches;
    std::vector<core::FitResult> fits;
    std::vector<std::uint8_t> fitted;
    std::vector<float> predictions;
    std::vector<int> frames;          // frames that were searched (sorted, unique)

    std::size_t size() const { return peaks.size(); }
    bool hasFit(std::size_t i) const { return i < fitted.size() && fitted[i]; }
    bool hasPrediction(std::size_t i) const;
    /// Appends `other` (same patch size), replacing every peak of the frames it searched.
    void merge(PeakResults other);
    /// Pads fits/fitted/predictions to one entry per peak.
    void normalise();
};

class PeakTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column {
        Id, Frame, Row, Col, MaxValue, Pixels, Amplitude, FitRow, FitCol, Converged, Rms,
        NNRow, NNCol, Distance, Flags, ColumnCount
    };

    explicit PeakTableModel(QObject *parent = nullptr);

    void setResults(PeakResults results);
    /// Fits for the peaks in `ids` (fits[k] belongs to ids[k]).
    void setFits(const std::vector<std::size_t> &ids, const std::vector<core::FitResult> &fits);
    /// Predictions for every peak (2 per peak, patch coordinates); empty clears them.
    void setPredictions(std::vector<float> predictions);
    void clear();

    const PeakResults &results() const { return m_results; }
    int peakCount() const { return int(m_results.peaks.size()); }
    bool searched(int frame) const;
    const core::Peak &peak(int id) const { return m_results.peaks[std::size_t(id)]; }
    bool hasFit(int id) const { return m_results.hasFit(std::size_t(id)); }
    bool hasPrediction(int id) const { return m_results.hasPrediction(std::size_t(id)); }
    int fittedCount() const;
    int convergedCount() const;
    int predictedCount() const;
    /// Amplitude used by the filter: the fitted amplitude when fitted, else max - background.
    double amplitude(int id) const;
    /// Fitted / predicted centres in frame coordinates; false when absent.
    bool fitCentre(int id, double &row, double &col) const;
    bool predictedCentre(int id, double &row, double &col) const;
    /// Distance in pixels between fit and prediction; NaN when either is absent.
    double fitToModelDistance(int id) const;

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    PeakResults m_results;
};

class PeakFilterProxy : public QSortFilterProxyModel {
    Q_OBJECT
public:
    explicit PeakFilterProxy(QObject *parent = nullptr);

    void setMinAmplitude(double value);
    void setConvergedOnly(bool on);
    /// Keeps peaks whose fit-to-model distance is >= value (0 = no filter).
    void setMinDistance(double value);
    /// Only peaks of this frame (-1 = all frames).
    void setFrame(int frame);
    double minAmplitude() const { return m_minAmplitude; }
    bool convergedOnly() const { return m_convergedOnly; }
    double minDistance() const { return m_minDistance; }
    int frame() const { return m_frame; }

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const override;
    bool lessThan(const QModelIndex &left, const QModelIndex &right) const override;

private:
    double m_minAmplitude = 0;
    bool m_convergedOnly = false;
    double m_minDistance = 0;
    int m_frame = -1;
};

} // namespace braggnac::ui
