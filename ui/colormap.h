#pragma once
// Colour tables and intensity scaling for detector images. Rendering maps a float image through
// levels [low, high] (values outside are clamped), a scaling curve and a 256-entry colour table
// into an RGB32 QImage; non-finite pixels get nanColor(). Thread-safe (const, no shared state).
#include <QImage>
#include <QString>
#include <QStringList>
#include <QVector>

namespace braggnac::ui {

enum class Scaling { Linear, Sqrt, Log };
/// t in [0, 1] -> [0, 1]: identity, sqrt(t), log10(1 + 1000 t) / log10(1001).
double applyScaling(double t, Scaling scaling);
/// Inverse of applyScaling.
double invertScaling(double s, Scaling scaling);
QString scalingKey(Scaling scaling);           // "linear", "sqrt", "log"
Scaling scalingFromKey(const QString &key);    // unknown keys give Linear

class Colormap {
public:
    enum class Name { Grey, Viridis, InvertedGrey };

    explicit Colormap(Name name = Name::Grey);
    Name name() const { return m_name; }
    static QList<Name> all();
    static QString displayName(Name name);    // "Grey", "Viridis", "Inverted grey"
    static QString key(Name name);            // "grey", "viridis", "inverted-grey"
    static Name fromKey(const QString &key);  // unknown keys give Grey

    /// 256 entries, index 0 = low level.
    const QVector<QRgb> &table() const { return m_table; }
    /// Colour of a normalised, already scaled value s in [0, 1] (clamped).
    QRgb color(double s) const;
    static QRgb nanColor() { return qRgb(255, 0, 255); }

    /// Renders rows x cols floats (row-major). `threads` <= 0: all hardware threads.
    QImage render(const float *data, int rows, int cols, double low, double high, Scaling scaling,
                  int threads = 0) const;

private:
    Name m_name;
    QVector<QRgb> m_table;
};

} // namespace braggnac::ui
