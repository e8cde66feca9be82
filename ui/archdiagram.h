#pragma once
// An ArchSpec drawn as a readable diagram, top to bottom: input -> stem -> every conv layer or
// attention block of each slot (with channels x size x size and the effective kernel) ->
// flatten -> each dense layer -> the 2 outputs, from ArchSpec::shapes(). Boxes are coloured by
// kind; the slot a layer belongs to is named. GUI thread only.
#include <QString>
#include <QWidget>

#include "core/arch/archspec.h"

namespace braggnac::ui {

class ArchDiagram : public QWidget {
    Q_OBJECT
public:
    explicit ArchDiagram(QWidget *parent = nullptr);
    /// Shows a spec (an invalid one: its error in place of the boxes).
    void setSpec(const core::ArchSpec &spec);
    void clear();
    /// The box texts, top to bottom (tests).
    QStringList boxTexts() const;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

protected:
    void paintEvent(QPaintEvent *event) override;

private:
    struct Box {
        QString title, detail;
        QColor colour;
    };
    std::vector<Box> m_boxes;
    QString m_error;
};

} // namespace braggnac::ui
