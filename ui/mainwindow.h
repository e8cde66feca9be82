#pragma once
// BraggNAC Studio's main window: a stage list on the left (Frames, Dataset, Train, Evaluate now;
// Search, Compress, Export slot in with addStage), the Frames stage (frame view, display and
// peaks panels, peak table, patch inspector), menus and shortcuts, drag and drop, recent files,
// the status bar (pixel readout, zoom, progress of the running job with a cancel button) and
// the settings (geometry, layout, recent files, last folders). Errors are shown in non-blocking
// message boxes and announced with errorShown(message), so tests observe them.
#include <memory>
#include <vector>

#include <QHash>
#include <QMainWindow>
#include <QPointer>
#include <QString>
#include <QStringList>

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QListWidget;
class QMenu;
class QProgressBar;
class QSplitter;
class QStackedWidget;
class QTabWidget;
class QTableView;
class QTemporaryDir;
class QTimer;
class QToolButton;
class QAction;

namespace braggnac::core {
class FrameSource;
class Model;
}

namespace braggnac::ui {

class DatasetPanel;
class EvaluatePanel;
class FrameView;
class FramesPanel;
class Job;
class PatchInspector;
class PeaksPanel;
class StudioContext;
class TrainPanel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget *parent = nullptr);
    ~MainWindow() override;

    StudioContext *context() const { return m_context; }
    FrameView *frameView() const { return m_view; }
    FramesPanel *framesPanel() const { return m_framesPanel; }
    PeaksPanel *peaksPanel() const { return m_peaksPanel; }
    QTableView *peakTable() const { return m_table; }
    PatchInspector *patchInspector() const { return m_inspector; }
    DatasetPanel *datasetPanel() const { return m_datasetPanel; }
    TrainPanel *trainPanel() const { return m_trainPanel; }
    EvaluatePanel *evaluatePanel() const { return m_evaluatePanel; }

    /// Adds a stage page to the stage list (key: "frames", "dataset", ... "export").
    void addStage(const QString &key, const QString &title, const QString &iconPath, QWidget *page);
    QStringList stageKeys() const;
    QString currentStage() const;
    void setStage(const QString &key);

    /// Path of the open frame file ("" when none).
    QString currentFile() const;
    /// Selected peak id (row of the peak model), -1 when none.
    int selectedPeak() const { return m_selectedPeak; }
    /// True while any job the window tracks runs.
    bool isBusy() const;
    QStringList recentFiles() const;
    QString demoPath() const;

public Q_SLOTS:
    /// Opens a frame file in a Job. HDF5 without `dataset`: the default dataset, or the dataset
    /// browser when the file has none. Errors go to showError; the current file stays open.
    void openFile(const QString &path, const QString &dataset = {});
    void openFileDialog();
    /// Opens the HDF5 dataset browser for a file (asks for the file when `path` is empty).
    void openHdf5Browser(const QString &path = {});
    /// Simulates demo frames (core::simulateFrames) into a temporary HDF5 file and opens it.
    void openDemo();
    void openModelDialog();
    void openModel(const QString &folder);
    /// Selects a peak everywhere: view marker (centred, switching frames if needed), table row,
    /// inspector. -1 clears.
    void selectPeak(int id);
    void showError(const QString &message);
    void exportViewImage();
    void exportPatchImage();
    void exportPeakTable();
    void showAbout();
    /// Drives the window through its main views and saves one PNG per view into `dir`, then
    /// quits the application (exit code 0, or 1 when a step failed or timed out).
    void startScreenshotTour(const QString &dir);

Q_SIGNALS:
    void fileOpened(const QString &path);
    void errorShown(const QString &message);
    void peakSelected(int id);

protected:
    void closeEvent(QCloseEvent *event) override;
    void dragEnterEvent(QDragEnterEvent *event) override;
    void dropEvent(QDropEvent *event) override;

private:
    void buildFramesStage();
    void buildMenus();
    void buildStatusBar();
    void restoreSettings();
    void saveSettings() const;
    void trackJob(Job *job, bool reportErrors = true);
    void trackForeignJobs(QWidget *root);
    void updateJobDisplay();
    void addRecent(const QString &path, const QString &dataset);
    void rebuildRecentMenu();
    void selectPeakFrom(int id, bool centre);
    void updateTableCount();
    void updateTitle();

    StudioContext *m_context;
    bool m_quitConfirmed = false; // the user chose "Stop and Quit" while work was running
    QListWidget *m_stageList = nullptr;
    QStackedWidget *m_stages = nullptr;
    QHash<QString, QWidget *> m_stagePages;
    QWidget *m_framesPage = nullptr;

    FrameView *m_view = nullptr;
    FramesPanel *m_framesPanel = nullptr;
    PeaksPanel *m_peaksPanel = nullptr;
    QTableView *m_table = nullptr;
    PatchInspector *m_inspector = nullptr;
    QTabWidget *m_sideTabs = nullptr;
    QSplitter *m_mainSplitter = nullptr;
    QSplitter *m_viewSplitter = nullptr;
    QSplitter *m_bottomSplitter = nullptr;
    QDoubleSpinBox *m_filterAmplitude = nullptr;
    QCheckBox *m_filterConverged = nullptr;
    QDoubleSpinBox *m_filterDistance = nullptr;
    QCheckBox *m_filterFrame = nullptr;
    QLabel *m_tableCount = nullptr;
    DatasetPanel *m_datasetPanel = nullptr;
    TrainPanel *m_trainPanel = nullptr;
    EvaluatePanel *m_evaluatePanel = nullptr;

    QMenu *m_recentMenu = nullptr;
    QLabel *m_pixelLabel = nullptr;
    QLabel *m_zoomLabel = nullptr;
    QLabel *m_jobLabel = nullptr;
    QProgressBar *m_jobProgress = nullptr;
    QToolButton *m_jobCancel = nullptr;
    QTimer *m_jobShowTimer = nullptr;
    std::vector<QPointer<Job>> m_tracked;
    std::vector<QPointer<Job>> m_running;

    Job *m_openJob = nullptr;
    Job *m_demoJob = nullptr;
    Job *m_modelJob = nullptr;
    QString m_openingPath, m_openingDataset;
    std::shared_ptr<std::shared_ptr<const core::FrameSource>> m_openResult;
    std::unique_ptr<QTemporaryDir> m_demoDir;
    QString m_demoPath, m_demoPending;
    std::shared_ptr<std::shared_ptr<const core::Model>> m_modelResult;
    QString m_modelFolder;

    int m_selectedPeak = -1;
    int m_pendingPeak = -1;
    bool m_selecting = false;
};

} // namespace braggnac::ui
