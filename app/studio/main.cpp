// braggnac-studio: the desktop application. Thin: application identity (for QSettings), the
// numeric runtime, the main window, and files given on the command line.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QSettings>
#include <QTemporaryDir>
#include <QTimer>

#include "core/common/runtime.h"
#include "ui/mainwindow.h"

int main(int argc, char **argv)
{
    braggnac::core::configureNumericRuntime();
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("BraggNAC"));
    QApplication::setOrganizationDomain(QStringLiteral("braggnac.org"));
    QApplication::setApplicationName(QStringLiteral("BraggNAC Studio"));
    QApplication::setApplicationVersion(QStringLiteral(BRAGGNAC_VERSION));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("BraggNAC Studio: from diffraction frames to Bragg-peak networks."));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("file"), QStringLiteral("Frame file to open (GE, TIFF or HDF5)."));
    const QCommandLineOption dataset(QStringLiteral("dataset"), QStringLiteral("HDF5 dataset holding the frames."),
                                     QStringLiteral("path"));
    const QCommandLineOption demo(QStringLiteral("demo"), QStringLiteral("Open the simulated demo frames."));
    const QCommandLineOption tour(QStringLiteral("screenshot-tour"),
                                  QStringLiteral("Drive the studio through its main views, save one PNG per view "
                                                 "into DIR and quit (uses fresh settings)."),
                                  QStringLiteral("DIR"));
    parser.addOption(dataset);
    parser.addOption(demo);
    parser.addOption(tour);
    parser.process(app);

    // The tour must not depend on (or change) the user's settings.
    QTemporaryDir tourSettings;
    if (parser.isSet(tour)) {
        QSettings::setDefaultFormat(QSettings::IniFormat);
        QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, tourSettings.path());
    }

    braggnac::ui::MainWindow window;
    window.show();
    if (parser.isSet(tour)) {
        const QString dir = QDir(parser.value(tour)).absolutePath();
        QTimer::singleShot(0, &window, [&window, dir]() { window.startScreenshotTour(dir); });
    } else if (parser.isSet(demo)) {
        QTimer::singleShot(0, &window, &braggnac::ui::MainWindow::openDemo);
    } else if (!parser.positionalArguments().isEmpty()) {
        const QString file = parser.positionalArguments().first();
        const QString ds = parser.value(dataset);
        QTimer::singleShot(0, &window, [&window, file, ds]() { window.openFile(file, ds); });
    }
    return app.exec();
}
