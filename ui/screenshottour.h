#pragma once
// Drives a MainWindow through its main views (demo frames, peaks found and fitted, a quickly
// trained model's predictions, each stage) and saves QWidget::grab() of the window per view as
// DIR/studio-<view>.png, from the running application. Used by scripts/screenshots.sh through
// `braggnac-studio --screenshot-tour DIR`; quits the application when done (exit code 1 when a
// step failed or timed out).
#include <functional>
#include <vector>

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QTimer>

namespace braggnac::ui {

class MainWindow;

class ScreenshotTour : public QObject {
    Q_OBJECT
public:
    ScreenshotTour(MainWindow *window, QString dir);
    void start();

private:
    struct Step {
        QString name;
        std::function<void()> action;
        std::function<bool()> ready;
        QString shot;        // file name under dir, empty = none
        int timeoutMs = 120000;
    };
    void buildSteps();
    void tick();
    void fail(const QString &why);
    int pickPeak() const;

    MainWindow *m_window;
    QString m_dir;
    std::vector<Step> m_steps;
    std::size_t m_index = 0;
    bool m_acted = false;
    int m_stable = 0;
    QTimer m_timer;
    QElapsedTimer m_elapsed;
};

} // namespace braggnac::ui
