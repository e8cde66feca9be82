#pragma once
// The studio's shared document: what is open now (frame file, patch dataset, model), shared by
// every tab. Owned by the main window; tabs keep a pointer. GUI thread only.
#include <memory>

#include <QObject>
#include <QString>

#include "core/io/framesource.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"

namespace braggnac::ui {

class StudioContext : public QObject {
    Q_OBJECT
public:
    explicit StudioContext(QObject *parent = nullptr) : QObject(parent) {}

    /// Current frame file (null when none). Frames are read through it off the GUI thread.
    std::shared_ptr<const core::FrameSource> frames() const { return m_frames; }
    void setFrames(std::shared_ptr<const core::FrameSource> source)
    {
        m_frames = std::move(source);
        Q_EMIT framesChanged();
    }

    /// Current patch dataset (found, fitted, simulated or opened) and where it lives on disk
    /// (empty when not saved yet).
    std::shared_ptr<const core::PatchDataset> dataset() const { return m_dataset; }
    QString datasetPath() const { return m_datasetPath; }
    void setDataset(std::shared_ptr<const core::PatchDataset> data, const QString &path = {})
    {
        m_dataset = std::move(data);
        m_datasetPath = path;
        Q_EMIT datasetChanged();
    }

    /// Current model (trained in the studio or loaded from a model folder).
    std::shared_ptr<const core::Model> model() const { return m_model; }
    QString modelPath() const { return m_modelPath; }
    void setModel(std::shared_ptr<const core::Model> model, const QString &path = {})
    {
        m_model = std::move(model);
        m_modelPath = path;
        Q_EMIT modelChanged();
    }

Q_SIGNALS:
    void framesChanged();
    void datasetChanged();
    void modelChanged();
    /// A status-bar message from any tab.
    void statusMessage(const QString &text, int timeoutMs = 5000);

private:
    std::shared_ptr<const core::FrameSource> m_frames;
    std::shared_ptr<const core::PatchDataset> m_dataset;
    QString m_datasetPath;
    std::shared_ptr<const core::Model> m_model;
    QString m_modelPath;
};

} // namespace braggnac::ui
