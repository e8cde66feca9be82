#pragma once
// The selected peak, magnified: its patch with the pseudo-Voigt centre (+) and the model's
// centre (x), the fit residual (patch - fitted model, blue negative / red positive) and the
// fitted parameters. Coordinates in the table are patch coordinates unless said otherwise.
#include <vector>

#include <QWidget>

#include "core/peaks/fitter.h"
#include "ui/colormap.h"

class QLabel;
class QTableWidget;

namespace braggnac::ui {

struct PatchDetails {
    int id = -1;
    int frame = 0;
    int originRow = 0, originCol = 0; // top-left pixel of the patch in its frame
    int size = 0;
    std::vector<float> patch;         // size * size raw counts
    bool hasFit = false;
    core::FitResult fit;              // centre in patch coordinates
    bool hasPrediction = false;
    double nnRow = 0, nnCol = 0;      // patch coordinates
};

class PatchCanvas;

class PatchInspector : public QWidget {
    Q_OBJECT
public:
    explicit PatchInspector(QWidget *parent = nullptr);

    void showPatch(const PatchDetails &details);
    void clear();
    const PatchDetails &details() const { return m_details; }
    void setColormap(const Colormap &map);
    /// Residual image (size*size, patch - model); empty without a fit.
    const std::vector<float> &residual() const { return m_residual; }
    /// Saves both images side by side with their markers as PNG or SVG (by suffix), atomically.
    void exportImage(const QString &path) const;

private:
    void render(QPainter &painter, const QSize &size) const;

    PatchDetails m_details;
    std::vector<float> m_residual;
    QLabel *m_title = nullptr;
    PatchCanvas *m_patchCanvas = nullptr;
    PatchCanvas *m_residualCanvas = nullptr;
    QTableWidget *m_params = nullptr;
};

} // namespace braggnac::ui
