#pragma once
// Helpers shared by the tests (header-only; not a test itself: CMake globs tst_*.cpp).
//   runCli: runs the braggnac CLI built with the tests (BRAGGNAC_CLI) and collects its output.
//   inputErrorMessage: the message of the InputError a call throws, for checking its wording.
#include <exception>

#include <QByteArray>
#include <QProcess>
#include <QString>
#include <QStringList>

#include "core/common/error.h"

namespace braggnac::test {

struct CliResult {
    bool finished = false;                              ///< false: still running at the timeout (killed)
    QProcess::ExitStatus exitStatus = QProcess::CrashExit;
    int exitCode = -1;                                  ///< -1 when it did not finish
    QByteArray out, err;                                ///< stdout, stderr ("timed out ..." on timeout)
};

/// Runs `braggnac args...` and waits at most timeoutMs for it to finish.
inline CliResult runCli(const QStringList &args, int timeoutMs = 120000)
{
    QProcess p;
    p.start(QStringLiteral(BRAGGNAC_CLI), args);
    CliResult r;
    if (!p.waitForFinished(timeoutMs)) {
        r.err = "timed out after " + QByteArray::number(timeoutMs) + " ms";
        return r;
    }
    r.finished = true;
    r.exitStatus = p.exitStatus();
    r.exitCode = p.exitCode();
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}

/// Runs fn; returns the message of the core::InputError it throws, "NO EXCEPTION" when it
/// returns, "WRONG EXCEPTION TYPE: <what>" for another std::exception (check threwInputError).
template <class Fn>
QString inputErrorMessage(Fn fn)
{
    try {
        fn();
    } catch (const core::InputError &e) {
        return QString::fromStdString(e.what());
    } catch (const std::exception &e) {
        return QStringLiteral("WRONG EXCEPTION TYPE: ") + QString::fromStdString(e.what());
    }
    return QStringLiteral("NO EXCEPTION");
}

/// False for the two markers inputErrorMessage returns when fn did not throw an InputError.
inline bool threwInputError(const QString &message)
{
    return message != QLatin1String("NO EXCEPTION")
        && !message.startsWith(QLatin1String("WRONG EXCEPTION TYPE: "));
}

} // namespace braggnac::test
