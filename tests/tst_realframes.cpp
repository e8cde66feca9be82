// braggnac-test-libs: braggnac_io
// Real far-field HEDM frames (tests/data/hexrd-zr, alpha-zirconium, GE2 detector): the HDF5 and
// TIFF copies agree pixel for pixel, a GE2 copy written by us reads back identical, and known
// pixel values from the reference peak list (computed independently with scipy) are found.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>

#include "core/io/frame.h"
#include "core/io/framesource.h"

using namespace braggnac::core;

namespace {
const QString kDir = QStringLiteral(BRAGGNAC_TEST_DATA "/hexrd-zr/");

int countDifferences(const Frame &a, const Frame &b)
{
    if (a.rows != b.rows || a.cols != b.cols)
        return -1;
    int n = 0;
    for (std::size_t i = 0; i < a.data.size(); ++i)
        n += a.data[i] != b.data[i];
    return n;
}
} // namespace

class TestRealFrames : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<FrameSource> m_h5;
    std::vector<Frame> m_frames; // all 20, from the HDF5 file
    QJsonObject m_ref;

private Q_SLOTS:
    void initTestCase()
    {
        m_h5 = openFrameSource((kDir + QStringLiteral("real_zr_20frames.h5")).toStdString());
        QFile ref(kDir + QStringLiteral("real_zr_peaks_ref.json"));
        QVERIFY(ref.open(QIODevice::ReadOnly));
        m_ref = QJsonDocument::fromJson(ref.readAll()).object();
        QVERIFY(!m_ref.isEmpty());
        // Every other test reads m_frames: load them here so each test also runs on its own.
        QCOMPARE(m_h5->frameCount(), 20);
        for (int i = 0; i < m_h5->frameCount(); ++i)
            m_frames.push_back(m_h5->readFrame(i));
        QCOMPARE(int(m_frames.size()), 20);
    }

    void hdf5Metadata()
    {
        QCOMPARE(m_h5->format(), FrameFormat::HDF5);
        QCOMPARE(QString::fromStdString(m_h5->dataset()), QStringLiteral("/entry/data/data"));
        QCOMPARE(m_h5->frameCount(), 20);
        QCOMPARE(m_h5->rows(), 2048);
        QCOMPARE(m_h5->cols(), 2048);
        QCOMPARE(m_h5->pixelType(), PixelType::UInt16);
        // A second read of the same frame gives the same pixels (no state left by the first).
        QCOMPARE(countDifferences(m_h5->readFrame(19), m_frames.at(19)), 0);
    }

    void frame0MaxPixel()
    {
        const Frame &f = m_frames.at(0);
        const auto it = std::max_element(f.data.begin(), f.data.end()); // first on ties
        const std::size_t idx = std::size_t(it - f.data.begin());
        QCOMPARE(*it, 14552.f);
        QCOMPARE(int(idx / 2048), 719);
        QCOMPARE(int(idx % 2048), 1507);
        // The frame cache kept only pixels above a threshold: most pixels are exactly 0.
        const auto zeros = std::count(f.data.begin(), f.data.end(), 0.f);
        QVERIFY(zeros > 2048 * 2048 * 9 / 10);
        QVERIFY(zeros < 2048 * 2048);
    }

    void referencePeakPixels_data()
    {
        QTest::addColumn<int>("frame");
        for (int i = 0; i < 20; ++i)
            QTest::newRow(qPrintable(QStringLiteral("frame %1").arg(i))) << i;
    }
    void referencePeakPixels()
    {
        // Every reference peak's max pixel (row, col, value) from real_zr_peaks_ref.json.
        QFETCH(int, frame);
        const QJsonObject per = m_ref.value(QStringLiteral("per_frame")).toArray().at(frame).toObject();
        QCOMPARE(per.value(QStringLiteral("frame")).toInt(), frame);
        const QJsonArray peaks = per.value(QStringLiteral("peaks")).toArray();
        QCOMPARE(peaks.size(), m_ref.value(QStringLiteral("n_peaks_per_frame")).toArray().at(frame).toInt());
        QVERIFY(!peaks.isEmpty());
        const Frame &f = m_frames.at(std::size_t(frame));
        for (const auto &p : peaks) {
            const QJsonArray a = p.toArray(); // centroid_row, centroid_col, max_row, max_col, npix, max_value, sum
            const int r = a.at(2).toInt(), c = a.at(3).toInt();
            QCOMPARE(f.at(r, c), float(a.at(5).toDouble()));
        }
    }

    void tiffMatchesHdf5()
    {
        auto tif = openFrameSource((kDir + QStringLiteral("real_zr_frame0.tif")).toStdString());
        QCOMPARE(tif->format(), FrameFormat::TIFF);
        QCOMPARE(tif->frameCount(), 1);
        QCOMPARE(tif->pixelType(), PixelType::UInt16);
        QCOMPARE(countDifferences(tif->readFrame(0), m_frames.at(0)), 0);
        // Frame 0 differs from frame 1, so the comparison above is not vacuous.
        QVERIFY(countDifferences(tif->readFrame(0), m_frames.at(1)) > 0);
    }

    void ge2CopyMatchesHdf5()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath(QStringLiteral("zr_copy.ge2")).toStdString();
        writeGeFrames(path, m_frames);
        QCOMPARE(QFile(QString::fromStdString(path)).size(), 8192 + 20LL * 2048 * 2048 * 2);
        auto ge = openFrameSource(path);
        QCOMPARE(ge->format(), FrameFormat::GE);
        QCOMPARE(ge->frameCount(), 20);
        for (int i = 0; i < 20; ++i)
            QCOMPARE(countDifferences(ge->readFrame(i), m_frames.at(std::size_t(i))), 0);
        QCOMPARE(ge->readFrame(0).at(719, 1507), 14552.f);
    }
};

QTEST_GUILESS_MAIN(TestRealFrames)
#include "tst_realframes.moc"
