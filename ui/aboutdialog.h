#pragma once
// Help -> About: the BraggNAC version and the versions of the libraries it runs on (Qt,
// LibTorch, HDF5, OpenCV, libtiff, SQLite), as linked at run time where the library says so.
#include <QDialog>
#include <QList>
#include <QPair>
#include <QString>

namespace braggnac::ui {

class AboutDialog : public QDialog {
    Q_OBJECT
public:
    explicit AboutDialog(QWidget *parent = nullptr);

    /// (library, version) pairs shown in the dialog.
    static QList<QPair<QString, QString>> libraryVersions();
};

} // namespace braggnac::ui
