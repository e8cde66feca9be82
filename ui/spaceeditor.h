#pragma once
// The search space editor: the hierarchical space of docs/search-space.md drawn as it is - input
// and stem, the block slots with their allowed types and each type's choices, the head's layers,
// the constraints - as value lists (comma separated integers) and toggles (norms, activations,
// block types). Every edit rebuilds the space JSON and validates it with the core
// (SearchSpace::fromJson); an error is shown AT the widget of the field the core names
// ("blocks.conv.kernel: kernels must be odd") and the window stays usable. The size of the space
// (SearchSpace::size()) and a preview of a few random valid specs with their cost are computed
// on a worker thread (a newer edit supersedes an older result). Load/save use the same JSON the
// CLI reads (--space FILE); a saved file is SearchSpace::toJson() and loads unchanged.
// GUI thread only.
#include <optional>
#include <string>

#include <QFutureWatcher>
#include <QHash>
#include <QTimer>
#include <QWidget>

#include <nlohmann/json.hpp>

#include "core/search/space.h"

class QCheckBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTableWidget;

namespace braggnac::ui {

class SpaceEditor : public QWidget {
    Q_OBJECT
public:
    explicit SpaceEditor(QWidget *parent = nullptr);
    ~SpaceEditor() override;

    /// Shows a space (a file's JSON, valid or not: what can be read is filled in, the first
    /// error is shown at its field).
    void setSpaceJson(const nlohmann::json &j, const QString &source = {});
    void setSpace(const core::SearchSpace &space);
    /// Loads a space file; false (and errorOccurred with "path: reason") when it is not JSON.
    /// A JSON file with errors in the space is shown with the error at its field and returns true.
    bool loadFile(const QString &path);
    /// Saves the current space (must be valid) atomically. False + error text otherwise.
    bool saveFile(const QString &path, QString *error = nullptr);

    /// The JSON the widgets describe now (before validation).
    nlohmann::json currentJson() const;
    /// The valid space the widgets describe, or nullopt (see errorMessage()).
    const std::optional<core::SearchSpace> &space() const { return m_space; }
    QString errorMessage() const { return m_error; }
    QString errorField() const { return m_errorField; }
    /// The widget that shows field's value ("stem.channels", "blocks.conv", ...) and the label
    /// where its error appears (nullptr when the field has none).
    QWidget *fieldWidget(const QString &field) const { return m_fields.value(field); }
    QLabel *fieldErrorLabel(const QString &field) const { return m_errorLabels.value(field); }
    QString sizeText() const;
    /// The last size computed for the current space (nullopt while computing or invalid).
    const std::optional<core::SpaceSize> &lastSize() const { return m_size; }
    bool isComputing() const { return m_future.isRunning() || m_pending; }
    /// Blocks until the size/preview of the current space is ready (tests).
    void waitForSize();
    QTableWidget *previewTable() const { return m_preview; }

Q_SIGNALS:
    void spaceChanged(bool valid);
    void sizeReady();
    void errorOccurred(const QString &message);

private:
    struct Result {
        int generation = 0;
        core::SpaceSize size;
        struct Spec {
            QString summary;
            qint64 params = 0, macs = 0;
            double bops = 0;
        };
        std::vector<Spec> preview;
        QString error;
    };
    void build();
    QLineEdit *addList(QFormLayout *form, const QString &label, const QString &field, const QString &tip);
    QWidget *addToggles(QFormLayout *form, const QString &label, const QString &field, const QStringList &names);
    void addErrorRow(QFormLayout *form, const QString &field);
    void fill(const nlohmann::json &j);
    void edited();
    void validate();
    void showFieldError(const QString &field, const QString &message);
    void clearFieldErrors();
    void startSize();
    void onSizeDone();
    void updateEnabled();

    QHash<QString, QWidget *> m_fields;
    QHash<QString, QLabel *> m_errorLabels;
    QHash<QString, QStringList> m_toggleNames;
    QLineEdit *m_name = nullptr;
    QSpinBox *m_inputSize = nullptr;
    QCheckBox *m_forceOne = nullptr;
    QSpinBox *m_slots = nullptr;
    QSpinBox *m_bits = nullptr;
    QCheckBox *m_fpga = nullptr;
    QLineEdit *m_maxParams = nullptr;
    QLineEdit *m_maxBops = nullptr;
    QLabel *m_flow = nullptr;
    QLabel *m_status = nullptr;
    QLabel *m_sizeLabel = nullptr;
    QTableWidget *m_preview = nullptr;
    QWidget *m_convGroup = nullptr;
    QWidget *m_attentionGroup = nullptr;

    std::string m_description;
    std::optional<core::SearchSpace> m_space;
    std::optional<core::SpaceSize> m_size;
    QString m_error, m_errorField;
    bool m_filling = false;
    bool m_pending = false;
    int m_generation = 0;
    QTimer m_debounce;
    QFutureWatcher<Result> m_future;
};

} // namespace braggnac::ui
