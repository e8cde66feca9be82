#pragma once
// Lists the datasets of an HDF5 file (core::listHdf5Datasets) with shape and type, so the user
// picks the frame stack. Only 2-D/3-D numeric datasets can be chosen. The constructor throws
// core::InputError when the file is not HDF5 (callers show the message).
#include <vector>

#include <QDialog>

#include "core/io/framesource.h"

class QTreeWidget;
class QLabel;
class QDialogButtonBox;

namespace braggnac::ui {

class Hdf5BrowserDialog : public QDialog {
    Q_OBJECT
public:
    Hdf5BrowserDialog(const QString &path, const QString &preselect, QWidget *parent = nullptr);

    QString path() const { return m_path; }
    /// The chosen dataset path ("" when none is selected).
    QString selectedDataset() const;
    void selectDataset(const QString &dataset);
    const std::vector<core::Hdf5DatasetInfo> &datasets() const { return m_datasets; }
    int usableCount() const;

private:
    void updateButtons();

    QString m_path;
    std::vector<core::Hdf5DatasetInfo> m_datasets;
    QTreeWidget *m_tree = nullptr;
    QLabel *m_info = nullptr;
    QDialogButtonBox *m_buttons = nullptr;
};

} // namespace braggnac::ui
