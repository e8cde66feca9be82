#include "ui/hdf5browserdialog.h"

#include <QDialogButtonBox>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace braggnac::ui {

Hdf5BrowserDialog::Hdf5BrowserDialog(const QString &path, const QString &preselect, QWidget *parent)
    : QDialog(parent), m_path(path), m_datasets(core::listHdf5Datasets(path.toStdString()))
{
    setObjectName(QStringLiteral("hdf5Browser"));
    setWindowTitle(tr("Choose the frames dataset: %1").arg(QFileInfo(path).fileName()));
    auto *layout = new QVBoxLayout(this);
    m_info = new QLabel(this);
    m_info->setWordWrap(true);
    layout->addWidget(m_info);
    m_tree = new QTreeWidget(this);
    m_tree->setObjectName(QStringLiteral("hdf5Datasets"));
    m_tree->setColumnCount(3);
    m_tree->setHeaderLabels({tr("Dataset"), tr("Shape"), tr("Type")});
    m_tree->setRootIsDecorated(false);
    m_tree->setUniformRowHeights(true);
    for (const auto &info : m_datasets) {
        QStringList dims;
        for (auto d : info.shape)
            dims << QString::number(d);
        auto *item = new QTreeWidgetItem(m_tree, {QString::fromStdString(info.path),
                                                  dims.join(QStringLiteral(" × ")),
                                                  QString::fromStdString(info.type)});
        item->setData(0, Qt::UserRole, QString::fromStdString(info.path));
        if (!info.usableAsFrames) {
            item->setFlags(item->flags() & ~(Qt::ItemIsEnabled | Qt::ItemIsSelectable));
            item->setToolTip(0, tr("Not a 2-D or 3-D numeric dataset"));
        }
    }
    m_tree->header()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_tree->header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    m_tree->header()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
    layout->addWidget(m_tree);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel, this);
    layout->addWidget(m_buttons);
    connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(m_tree, &QTreeWidget::itemSelectionChanged, this, &Hdf5BrowserDialog::updateButtons);
    connect(m_tree, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem *item) {
        if (item->flags() & Qt::ItemIsEnabled)
            accept();
    });

    const int usable = usableCount();
    const bool hasDefault = std::any_of(m_datasets.begin(), m_datasets.end(), [](const auto &d) {
        return d.path == core::kDefaultHdf5Dataset && d.usableAsFrames;
    });
    m_info->setText(usable == 0
                        ? tr("%1 holds no 2-D or 3-D numeric dataset that could be frames.").arg(path)
                    : hasDefault ? tr("%1: choose the dataset that holds the frames.").arg(path)
                                 : tr("%1 has no %2 dataset: choose the one that holds the frames.")
                                       .arg(path, QString::fromLatin1(core::kDefaultHdf5Dataset)));
    selectDataset(preselect);
    if (selectedDataset().isEmpty()) {
        for (int i = 0; i < m_tree->topLevelItemCount(); ++i)
            if (m_tree->topLevelItem(i)->flags() & Qt::ItemIsEnabled) {
                m_tree->setCurrentItem(m_tree->topLevelItem(i));
                break;
            }
    }
    updateButtons();
    resize(560, 360);
}

QString Hdf5BrowserDialog::selectedDataset() const
{
    const auto items = m_tree->selectedItems();
    return items.isEmpty() ? QString() : items.first()->data(0, Qt::UserRole).toString();
}

void Hdf5BrowserDialog::selectDataset(const QString &dataset)
{
    for (int i = 0; i < m_tree->topLevelItemCount(); ++i) {
        QTreeWidgetItem *item = m_tree->topLevelItem(i);
        if (item->data(0, Qt::UserRole).toString() == dataset && (item->flags() & Qt::ItemIsEnabled)) {
            m_tree->setCurrentItem(item);
            return;
        }
    }
}

int Hdf5BrowserDialog::usableCount() const
{
    return int(std::count_if(m_datasets.begin(), m_datasets.end(), [](const auto &d) { return d.usableAsFrames; }));
}

void Hdf5BrowserDialog::updateButtons()
{
    m_buttons->button(QDialogButtonBox::Open)->setEnabled(!selectedDataset().isEmpty());
}

} // namespace braggnac::ui
