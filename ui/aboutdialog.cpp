#include "ui/aboutdialog.h"

#include <QDialogButtonBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtGlobal>

#include "core/common/runtime.h"
#include "core/common/versions.h"

namespace braggnac::ui {

QList<QPair<QString, QString>> AboutDialog::libraryVersions()
{
    QList<QPair<QString, QString>> out{{QStringLiteral("Qt"), QString::fromLatin1(qVersion())}};
    for (const core::LibraryVersion &v : core::libraryVersions())
        out.append({QString::fromStdString(v.name), QString::fromStdString(v.version)});
    return out;
}

AboutDialog::AboutDialog(QWidget *parent) : QDialog(parent)
{
    setObjectName(QStringLiteral("aboutDialog"));
    setWindowTitle(tr("About BraggNAC Studio"));
    auto *layout = new QVBoxLayout(this);
    auto *top = new QHBoxLayout;
    auto *icon = new QLabel(this);
    icon->setPixmap(QIcon(QStringLiteral(":/braggnac/icons/braggnac.svg")).pixmap(72, 72));
    icon->setAlignment(Qt::AlignTop);
    top->addWidget(icon);
    auto *text = new QLabel(this);
    text->setObjectName(QStringLiteral("aboutText"));
    text->setWordWrap(true);
    text->setTextFormat(Qt::RichText);
    text->setText(tr("<h2>%1</h2>"
                     "<p>Neural architecture codesign for fast Bragg-peak localisation: from X-ray "
                     "diffraction detector frames to peak finding, pseudo-Voigt labels, BraggNN-style "
                     "networks, architecture search, compression and FPGA export.</p>"
                     "<p>Studio and <tt>braggnac</tt> command line share one core library.</p>")
                      .arg(QString::fromStdString(core::versionString()).toHtmlEscaped()));
    top->addWidget(text, 1);
    layout->addLayout(top);
    const auto versions = libraryVersions();
    auto *table = new QTableWidget(int(versions.size()), 2, this);
    table->setObjectName(QStringLiteral("libraryVersions"));
    table->setHorizontalHeaderLabels({tr("Library"), tr("Version")});
    table->verticalHeader()->setVisible(false);
    table->horizontalHeader()->setStretchLastSection(true);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    for (int i = 0; i < versions.size(); ++i) {
        table->setItem(i, 0, new QTableWidgetItem(versions[i].first));
        table->setItem(i, 1, new QTableWidgetItem(versions[i].second));
    }
    table->resizeColumnToContents(0);
    table->setMinimumHeight(table->verticalHeader()->length() + table->horizontalHeader()->height() + 6);
    layout->addWidget(table);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close, this);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);
    resize(480, 420);
}

} // namespace braggnac::ui
