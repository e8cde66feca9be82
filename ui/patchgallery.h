#pragma once
// A small grid of patches from a dataset (min-max grey scale per patch, nearest-neighbour
// zoom) with the label centre drawn as a red cross when the dataset is labelled. Shows the
// first `maximum` rows; holds its own images, not the dataset. GUI thread only.
#include <memory>
#include <vector>

#include <QImage>
#include <QPointF>
#include <QWidget>

namespace braggnac::core {
struct PatchDataset;
}

namespace braggnac::ui {

class PatchGallery : public QWidget {
    Q_OBJECT
public:
    explicit PatchGallery(QWidget *parent = nullptr);

    /// Shows up to `maximum` patches of `data` (null clears), spread evenly over the dataset.
    void setDataset(const core::PatchDataset *data, int maximum = 24);
    int shownCount() const { return int(m_tiles.size()); }
    /// Dataset row of tile i.
    std::size_t rowOf(int tile) const { return m_tiles.at(std::size_t(tile)).row; }
    /// Label centre of tile i as (x = col, y = row) in patch coordinates; false when unlabelled.
    bool centreOf(int tile, QPointF *centre) const
    {
        const Tile &t = m_tiles.at(std::size_t(tile));
        if (centre)
            *centre = t.centre;
        return t.labelled;
    }

    QSize sizeHint() const override;
    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;

protected:
    void paintEvent(QPaintEvent *event) override;

private:
    struct Tile {
        std::size_t row = 0;
        QImage image;
        QPointF centre;
        bool labelled = false;
    };
    int columnsFor(int width) const;
    std::vector<Tile> m_tiles;
    int m_patchSize = 11;
};

} // namespace braggnac::ui
