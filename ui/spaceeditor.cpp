#include "ui/spaceeditor.h"

#include <cmath>

#include <QCheckBox>
#include <QCoreApplication>
#include <QFile>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QRegularExpression>
#include <QSaveFile>
#include <QScrollArea>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/search/random.h"
#include "ui/errors.h"

namespace braggnac::ui {

namespace {
const QStringList kNorms{QStringLiteral("none"), QStringLiteral("batch"), QStringLiteral("layer")};
const QStringList kActs{QStringLiteral("none"), QStringLiteral("relu"), QStringLiteral("leakyrelu"),
                        QStringLiteral("gelu")};
const QStringList kTypes{QStringLiteral("conv"), QStringLiteral("conv-attention"), QStringLiteral("none")};
const char *kSource = "space editor";

const QString kInvalidStyle = QStringLiteral("border: 2px solid #c0392b; border-radius: 3px;");

QString specSummary(const core::ArchSpec &s)
{
    QStringList parts;
    parts << QStringLiteral("stem %1@%2").arg(s.stem.channels).arg(s.stem.kernel);
    for (const auto &b : s.blocks) {
        if (b.type == core::BlockType::None)
            continue;
        if (b.type == core::BlockType::ConvAttention) {
            parts << QStringLiteral("attn h%1").arg(b.attentionChannels);
            continue;
        }
        QStringList layers;
        for (const auto &l : b.layers)
            layers << QStringLiteral("%1@%2").arg(l.channels).arg(l.kernel);
        parts << QStringLiteral("conv[%1]").arg(layers.join(QLatin1Char(',')));
    }
    QStringList head;
    for (const auto &d : s.head)
        head << QString::number(d.width);
    parts << QStringLiteral("head[%1]").arg(head.join(QLatin1Char(',')));
    return parts.join(QStringLiteral(" \u2192 "));
}

/// "space editor: blocks.conv.kernel[2]: kernels must be odd" -> ("blocks.conv.kernel[2]", rest)
std::pair<QString, QString> splitMessage(const QString &message)
{
    QString rest = message;
    const QString prefix = QString::fromLatin1(kSource) + QStringLiteral(": ");
    if (rest.startsWith(prefix))
        rest = rest.mid(prefix.size());
    const int colon = rest.indexOf(QStringLiteral(": "));
    if (colon < 0)
        return {QString(), rest};
    return {rest.left(colon), rest.mid(colon + 2)};
}
} // namespace

SpaceEditor::SpaceEditor(QWidget *parent) : QWidget(parent)
{
    build();
    m_debounce.setSingleShot(true);
    m_debounce.setInterval(150);
    connect(&m_debounce, &QTimer::timeout, this, &SpaceEditor::startSize);
    connect(&m_future, &QFutureWatcher<Result>::finished, this, &SpaceEditor::onSizeDone);
}

SpaceEditor::~SpaceEditor()
{
    m_future.waitForFinished();
}

QLineEdit *SpaceEditor::addList(QFormLayout *form, const QString &label, const QString &field, const QString &tip)
{
    auto *edit = new QLineEdit(this);
    edit->setObjectName(QStringLiteral("field:") + field);
    edit->setToolTip(tip);
    edit->setPlaceholderText(tr("comma-separated values"));
    form->addRow(label, edit);
    m_fields.insert(field, edit);
    addErrorRow(form, field);
    connect(edit, &QLineEdit::textEdited, this, &SpaceEditor::edited);
    return edit;
}

QWidget *SpaceEditor::addToggles(QFormLayout *form, const QString &label, const QString &field, const QStringList &names)
{
    auto *box = new QFrame(this);
    box->setObjectName(QStringLiteral("field:") + field);
    auto *row = new QHBoxLayout(box);
    row->setContentsMargins(2, 0, 2, 0);
    for (const QString &n : names) {
        auto *c = new QCheckBox(n, box);
        c->setObjectName(field + QLatin1Char('=') + n);
        row->addWidget(c);
        connect(c, &QCheckBox::toggled, this, &SpaceEditor::edited);
    }
    row->addStretch(1);
    form->addRow(label, box);
    m_fields.insert(field, box);
    m_toggleNames.insert(field, names);
    addErrorRow(form, field);
    return box;
}

void SpaceEditor::addErrorRow(QFormLayout *form, const QString &field)
{
    auto *label = new QLabel(this);
    label->setObjectName(QStringLiteral("error:") + field);
    label->setStyleSheet(QStringLiteral("color: #c0392b;"));
    label->setWordWrap(true);
    label->setVisible(false);
    form->addRow(QString(), label);
    m_errorLabels.insert(field, label);
}

void SpaceEditor::build()
{
    auto *outer = new QVBoxLayout(this);
    m_flow = new QLabel(this);
    m_flow->setObjectName(QStringLiteral("spaceFlow"));
    m_flow->setTextFormat(Qt::RichText);
    outer->addWidget(m_flow);

    auto *splitter = new QSplitter(Qt::Horizontal, this);
    outer->addWidget(splitter, 1);
    auto *scroll = new QScrollArea(splitter);
    scroll->setWidgetResizable(true);
    auto *inner = new QWidget(scroll);
    auto *columns = new QHBoxLayout(inner);
    auto *left = new QVBoxLayout;
    auto *right = new QVBoxLayout;
    columns->addLayout(left, 1);
    columns->addLayout(right, 1);
    scroll->setWidget(inner);

    auto group = [&](QVBoxLayout *col, const QString &title, const QString &field) {
        auto *g = new QGroupBox(title, inner);
        g->setObjectName(QStringLiteral("field:") + field);
        auto *form = new QFormLayout(g);
        form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
        col->addWidget(g);
        m_fields.insert(field, g);
        addErrorRow(form, field);
        return std::make_pair(g, form);
    };
    const QString intTip = tr("Allowed values, comma separated, e.g. 8, 16, 32");

    auto [inputG, inputF] = group(left, tr("Input and stem"), QStringLiteral("stem"));
    Q_UNUSED(inputG);
    m_name = new QLineEdit(this);
    m_name->setObjectName(QStringLiteral("field:name"));
    inputF->insertRow(0, tr("Name"), m_name);
    m_fields.insert(QStringLiteral("name"), m_name);
    connect(m_name, &QLineEdit::textEdited, this, &SpaceEditor::edited);
    m_inputSize = new QSpinBox(this);
    m_inputSize->setRange(1, 1024);
    m_inputSize->setObjectName(QStringLiteral("field:input_size"));
    inputF->insertRow(1, tr("Patch size"), m_inputSize);
    m_fields.insert(QStringLiteral("input_size"), m_inputSize);
    connect(m_inputSize, &QSpinBox::valueChanged, this, &SpaceEditor::edited);
    m_forceOne = new QCheckBox(tr("collapsing kernels become 1\u00d71 (NAC rule)"), this);
    m_forceOne->setObjectName(QStringLiteral("field:force_one_by_one"));
    inputF->insertRow(2, QString(), m_forceOne);
    m_fields.insert(QStringLiteral("force_one_by_one"), m_forceOne);
    connect(m_forceOne, &QCheckBox::toggled, this, &SpaceEditor::edited);
    addList(inputF, tr("Stem channels"), QStringLiteral("stem.channels"), intTip);
    addList(inputF, tr("Stem kernel"), QStringLiteral("stem.kernel"), tr("Odd kernel sizes"));
    addToggles(inputF, tr("Stem norm"), QStringLiteral("stem.norm"), kNorms);
    addToggles(inputF, tr("Stem activation"), QStringLiteral("stem.act"), kActs);

    auto [blocksG, blocksF] = group(left, tr("Block slots"), QStringLiteral("blocks"));
    Q_UNUSED(blocksG);
    m_slots = new QSpinBox(this);
    m_slots->setRange(0, 16);
    m_slots->setObjectName(QStringLiteral("field:blocks.slots"));
    blocksF->addRow(tr("Slots"), m_slots);
    m_fields.insert(QStringLiteral("blocks.slots"), m_slots);
    addErrorRow(blocksF, QStringLiteral("blocks.slots"));
    connect(m_slots, &QSpinBox::valueChanged, this, &SpaceEditor::edited);
    addToggles(blocksF, tr("Allowed types"), QStringLiteral("blocks.types"), kTypes);

    auto [convG, convF] = group(left, tr("conv block (each slot that is conv)"), QStringLiteral("blocks.conv"));
    m_convGroup = convG;
    addList(convF, tr("Layers"), QStringLiteral("blocks.conv.layers"), tr("Conv layers per block"));
    addList(convF, tr("Channels"), QStringLiteral("blocks.conv.channels"), intTip);
    addList(convF, tr("Kernel"), QStringLiteral("blocks.conv.kernel"), tr("Odd kernel sizes"));
    addToggles(convF, tr("Norm"), QStringLiteral("blocks.conv.norm"), kNorms);
    addToggles(convF, tr("Activation"), QStringLiteral("blocks.conv.act"), kActs);

    auto [attG, attF] = group(right, tr("conv-attention block"), QStringLiteral("blocks.conv-attention"));
    m_attentionGroup = attG;
    addList(attF, tr("Attention channels"), QStringLiteral("blocks.conv-attention.attention_channels"), intTip);
    addToggles(attF, tr("Activation"), QStringLiteral("blocks.conv-attention.act"), kActs);

    auto [headG, headF] = group(right, tr("Head (dense layers)"), QStringLiteral("head"));
    Q_UNUSED(headG);
    addList(headF, tr("Hidden layers"), QStringLiteral("head.layers"), tr("Number of hidden dense layers"));
    addList(headF, tr("Width"), QStringLiteral("head.width"), intTip);
    addToggles(headF, tr("Norm"), QStringLiteral("head.norm"), kNorms);
    addToggles(headF, tr("Activation"), QStringLiteral("head.act"), kActs);

    auto [conG, conF] = group(right, tr("Constraints"), QStringLiteral("constraints"));
    Q_UNUSED(conG);
    m_maxParams = new QLineEdit(this);
    m_maxParams->setPlaceholderText(tr("no limit"));
    m_maxParams->setObjectName(QStringLiteral("field:constraints.max_params"));
    conF->addRow(tr("Max parameters"), m_maxParams);
    m_fields.insert(QStringLiteral("constraints.max_params"), m_maxParams);
    addErrorRow(conF, QStringLiteral("constraints.max_params"));
    connect(m_maxParams, &QLineEdit::textEdited, this, &SpaceEditor::edited);
    m_maxBops = new QLineEdit(this);
    m_maxBops->setPlaceholderText(tr("no limit (e.g. 5e7)"));
    m_maxBops->setObjectName(QStringLiteral("field:constraints.max_bops"));
    conF->addRow(tr("Max BOPs"), m_maxBops);
    m_fields.insert(QStringLiteral("constraints.max_bops"), m_maxBops);
    addErrorRow(conF, QStringLiteral("constraints.max_bops"));
    connect(m_maxBops, &QLineEdit::textEdited, this, &SpaceEditor::edited);
    m_bits = new QSpinBox(this);
    m_bits->setRange(1, 64);
    m_bits->setObjectName(QStringLiteral("field:constraints.bits"));
    conF->addRow(tr("BOPs at bits"), m_bits);
    m_fields.insert(QStringLiteral("constraints.bits"), m_bits);
    addErrorRow(conF, QStringLiteral("constraints.bits"));
    connect(m_bits, &QSpinBox::valueChanged, this, &SpaceEditor::edited);
    m_fpga = new QCheckBox(tr("FPGA-friendly (no layer norm, GELU or attention)"), this);
    m_fpga->setObjectName(QStringLiteral("field:constraints.fpga_friendly"));
    conF->addRow(QString(), m_fpga);
    m_fields.insert(QStringLiteral("constraints.fpga_friendly"), m_fpga);
    addErrorRow(conF, QStringLiteral("constraints.fpga_friendly"));
    connect(m_fpga, &QCheckBox::toggled, this, &SpaceEditor::edited);
    left->addStretch(1);
    right->addStretch(1);

    auto *side = new QWidget(splitter);
    auto *sideLayout = new QVBoxLayout(side);
    m_status = new QLabel(side);
    m_status->setObjectName(QStringLiteral("spaceStatus"));
    m_status->setWordWrap(true);
    sideLayout->addWidget(m_status);
    m_sizeLabel = new QLabel(side);
    m_sizeLabel->setObjectName(QStringLiteral("spaceSize"));
    m_sizeLabel->setWordWrap(true);
    QFont big = m_sizeLabel->font();
    big.setPointSizeF(big.pointSizeF() * 1.3);
    big.setBold(true);
    m_sizeLabel->setFont(big);
    sideLayout->addWidget(m_sizeLabel);
    sideLayout->addWidget(new QLabel(tr("Random valid specs (standard cost, 32 bits):"), side));
    m_preview = new QTableWidget(0, 4, side);
    m_preview->setObjectName(QStringLiteral("spacePreview"));
    m_preview->setHorizontalHeaderLabels({tr("Spec"), tr("Params"), tr("MACs"), tr("BOPs")});
    m_preview->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_preview->verticalHeader()->setVisible(false);
    m_preview->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_preview->setWordWrap(true);
    sideLayout->addWidget(m_preview, 1);
    splitter->addWidget(scroll);
    splitter->addWidget(side);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
}

void SpaceEditor::fill(const nlohmann::json &j)
{
    m_filling = true;
    auto get = [&](std::initializer_list<const char *> path) -> const nlohmann::json * {
        const nlohmann::json *cur = &j;
        for (const char *k : path) {
            if (!cur->is_object() || !cur->contains(k))
                return nullptr;
            cur = &(*cur)[k];
        }
        return cur;
    };
    auto setList = [&](const QString &field, const nlohmann::json *v) {
        auto *edit = qobject_cast<QLineEdit *>(m_fields.value(field));
        QStringList parts;
        if (v && v->is_array())
            for (const auto &x : *v)
                parts << (x.is_string() ? QString::fromStdString(x.get<std::string>()) : QString::fromStdString(x.dump()));
        else if (v && !v->is_null())
            parts << QString::fromStdString(v->dump());
        edit->setText(parts.join(QStringLiteral(", ")));
    };
    auto setToggles = [&](const QString &field, const nlohmann::json *v) {
        QWidget *box = m_fields.value(field);
        for (const QString &n : m_toggleNames.value(field)) {
            bool on = false;
            if (v && v->is_array())
                for (const auto &x : *v)
                    if (x.is_string() && QString::fromStdString(x.get<std::string>()) == n)
                        on = true;
            box->findChild<QCheckBox *>(field + QLatin1Char('=') + n)->setChecked(on);
        }
    };
    const auto *name = get({"name"});
    m_name->setText(name && name->is_string() ? QString::fromStdString(name->get<std::string>()) : QString());
    const auto *desc = get({"description"});
    m_description = desc && desc->is_string() ? desc->get<std::string>() : std::string();
    const auto *in = get({"input_size"});
    m_inputSize->setValue(in && in->is_number_integer() ? in->get<int>() : 11);
    const auto *f1 = get({"force_one_by_one"});
    m_forceOne->setChecked(f1 && f1->is_boolean() ? f1->get<bool>() : true);
    setList(QStringLiteral("stem.channels"), get({"stem", "channels"}));
    setList(QStringLiteral("stem.kernel"), get({"stem", "kernel"}));
    setToggles(QStringLiteral("stem.norm"), get({"stem", "norm"}));
    setToggles(QStringLiteral("stem.act"), get({"stem", "act"}));
    const auto *slots = get({"blocks", "slots"});
    m_slots->setValue(slots && slots->is_number_integer() ? slots->get<int>() : 0);
    setToggles(QStringLiteral("blocks.types"), get({"blocks", "types"}));
    setList(QStringLiteral("blocks.conv.layers"), get({"blocks", "conv", "layers"}));
    setList(QStringLiteral("blocks.conv.channels"), get({"blocks", "conv", "channels"}));
    setList(QStringLiteral("blocks.conv.kernel"), get({"blocks", "conv", "kernel"}));
    setToggles(QStringLiteral("blocks.conv.norm"), get({"blocks", "conv", "norm"}));
    setToggles(QStringLiteral("blocks.conv.act"), get({"blocks", "conv", "act"}));
    setList(QStringLiteral("blocks.conv-attention.attention_channels"),
            get({"blocks", "conv-attention", "attention_channels"}));
    setToggles(QStringLiteral("blocks.conv-attention.act"), get({"blocks", "conv-attention", "act"}));
    setList(QStringLiteral("head.layers"), get({"head", "layers"}));
    setList(QStringLiteral("head.width"), get({"head", "width"}));
    setToggles(QStringLiteral("head.norm"), get({"head", "norm"}));
    setToggles(QStringLiteral("head.act"), get({"head", "act"}));
    const auto *mp = get({"constraints", "max_params"});
    m_maxParams->setText(mp && mp->is_number() ? QString::fromStdString(mp->dump()) : QString());
    const auto *mb = get({"constraints", "max_bops"});
    m_maxBops->setText(mb && mb->is_number() ? QString::number(mb->get<double>(), 'g', 12) : QString());
    const auto *bits = get({"constraints", "bits"});
    m_bits->setValue(bits && bits->is_number_integer() ? bits->get<int>() : 32);
    const auto *fpga = get({"constraints", "fpga_friendly"});
    m_fpga->setChecked(fpga && fpga->is_boolean() && fpga->get<bool>());
    m_filling = false;
}

nlohmann::json SpaceEditor::currentJson() const
{
    // Value lists: integers where the text is an integer, the text itself otherwise (the core
    // then names the field and the bad value).
    auto list = [&](const QString &field) {
        nlohmann::json a = nlohmann::json::array();
        const QString text = qobject_cast<QLineEdit *>(m_fields.value(field))->text();
        for (const QString &part : text.split(QRegularExpression(QStringLiteral("[,;\\s]+")), Qt::SkipEmptyParts)) {
            bool ok = false;
            const int v = part.toInt(&ok);
            if (ok)
                a.push_back(v);
            else
                a.push_back(part.toStdString());
        }
        return a;
    };
    auto toggles = [&](const QString &field) {
        nlohmann::json a = nlohmann::json::array();
        QWidget *box = m_fields.value(field);
        for (const QString &n : m_toggleNames.value(field))
            if (box->findChild<QCheckBox *>(field + QLatin1Char('=') + n)->isChecked())
                a.push_back(n.toStdString());
        return a;
    };
    auto checked = [&](const QString &field, const QString &name) {
        return m_fields.value(field)->findChild<QCheckBox *>(field + QLatin1Char('=') + name)->isChecked();
    };
    nlohmann::json j = nlohmann::json::object();
    j["name"] = m_name->text().toStdString();
    if (!m_description.empty())
        j["description"] = m_description;
    j["input_size"] = m_inputSize->value();
    j["force_one_by_one"] = m_forceOne->isChecked();
    j["stem"] = {{"channels", list(QStringLiteral("stem.channels"))},
                 {"kernel", list(QStringLiteral("stem.kernel"))},
                 {"norm", toggles(QStringLiteral("stem.norm"))},
                 {"act", toggles(QStringLiteral("stem.act"))}};
    nlohmann::json blocks = {{"slots", m_slots->value()}};
    if (m_slots->value() > 0) {
        blocks["types"] = toggles(QStringLiteral("blocks.types"));
        if (checked(QStringLiteral("blocks.types"), QStringLiteral("conv")))
            blocks["conv"] = {{"layers", list(QStringLiteral("blocks.conv.layers"))},
                              {"channels", list(QStringLiteral("blocks.conv.channels"))},
                              {"kernel", list(QStringLiteral("blocks.conv.kernel"))},
                              {"norm", toggles(QStringLiteral("blocks.conv.norm"))},
                              {"act", toggles(QStringLiteral("blocks.conv.act"))}};
        if (checked(QStringLiteral("blocks.types"), QStringLiteral("conv-attention")))
            blocks["conv-attention"] = {
                {"attention_channels", list(QStringLiteral("blocks.conv-attention.attention_channels"))},
                {"act", toggles(QStringLiteral("blocks.conv-attention.act"))}};
    }
    j["blocks"] = blocks;
    j["head"] = {{"layers", list(QStringLiteral("head.layers"))},
                 {"width", list(QStringLiteral("head.width"))},
                 {"norm", toggles(QStringLiteral("head.norm"))},
                 {"act", toggles(QStringLiteral("head.act"))}};
    auto number = [](const QString &text) -> nlohmann::json {
        const QString t = text.trimmed();
        if (t.isEmpty())
            return nullptr;
        bool ok = false;
        const qlonglong i = t.toLongLong(&ok);
        if (ok)
            return i;
        const double d = t.toDouble(&ok);
        if (ok)
            return d;
        return t.toStdString();
    };
    j["constraints"] = {{"max_params", number(m_maxParams->text())},
                        {"max_bops", number(m_maxBops->text())},
                        {"bits", m_bits->value()},
                        {"fpga_friendly", m_fpga->isChecked()}};
    return j;
}

void SpaceEditor::setSpaceJson(const nlohmann::json &j, const QString &source)
{
    Q_UNUSED(source);
    fill(j);
    validate();
}

void SpaceEditor::setSpace(const core::SearchSpace &space)
{
    setSpaceJson(space.toJson());
}

bool SpaceEditor::loadFile(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        Q_EMIT errorOccurred(withFile(path, f.errorString()));
        return false;
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(f.readAll().toStdString());
    } catch (const std::exception &e) {
        Q_EMIT errorOccurred(withFile(path, tr("not valid JSON: %1").arg(QString::fromUtf8(e.what()))));
        return false;
    }
    if (!j.is_object()) {
        Q_EMIT errorOccurred(withFile(path, tr("expected a JSON object (a search space)")));
        return false;
    }
    // Report what the file itself has wrong (unknown keys are lost by the widgets).
    std::string fileError;
    try {
        core::SearchSpace::fromJson(j, path.toStdString());
    } catch (const std::exception &e) {
        fileError = e.what();
    }
    setSpaceJson(j, path);
    if (!fileError.empty() && m_space) // the widgets could not show the file's problem
        Q_EMIT errorOccurred(QString::fromStdString(fileError));
    return true;
}

bool SpaceEditor::saveFile(const QString &path, QString *error)
{
    if (!m_space) {
        if (error)
            *error = withFile(path, tr("the space is not valid: %1").arg(m_error));
        return false;
    }
    QSaveFile f(path);
    const std::string text = m_space->toJson().dump(2) + "\n";
    if (!f.open(QIODevice::WriteOnly) || f.write(text.data(), qint64(text.size())) != qint64(text.size()) ||
        !f.commit()) {
        if (error)
            *error = withFile(path, f.errorString());
        return false;
    }
    return true;
}

void SpaceEditor::edited()
{
    if (!m_filling)
        validate();
}

void SpaceEditor::clearFieldErrors()
{
    for (auto it = m_errorLabels.begin(); it != m_errorLabels.end(); ++it) {
        it.value()->clear();
        it.value()->setVisible(false);
    }
    for (QWidget *w : std::as_const(m_fields))
        if (w->property("invalid").toBool()) {
            w->setProperty("invalid", false);
            w->setStyleSheet(QString());
        }
}

void SpaceEditor::showFieldError(const QString &field, const QString &message)
{
    // The longest known field that prefixes the named one: "blocks.conv.kernel[2]" -> the
    // kernel list; "blocks.conv" -> the conv group; an unknown field -> the status line only.
    QString f = field;
    f.remove(QRegularExpression(QStringLiteral("\\[\\d+\\]")));
    QString key;
    for (auto it = m_fields.cbegin(); it != m_fields.cend(); ++it)
        if ((f == it.key() || f.startsWith(it.key() + QLatin1Char('.'))) && it.key().size() > key.size())
            key = it.key();
    m_errorField = key;
    if (key.isEmpty())
        return;
    QWidget *w = m_fields.value(key);
    w->setProperty("invalid", true);
    if (qobject_cast<QGroupBox *>(w))
        w->setStyleSheet(QStringLiteral("QGroupBox { border: 2px solid #c0392b; border-radius: 4px; margin-top: 1.2em; }"
                                        "QGroupBox::title { subcontrol-origin: margin; left: 8px; color: #c0392b; }"));
    else if (qobject_cast<QFrame *>(w) && !qobject_cast<QLineEdit *>(w))
        w->setStyleSheet(QStringLiteral("QFrame#%1 { %2 }").arg(w->objectName(), kInvalidStyle));
    else
        w->setStyleSheet(kInvalidStyle);
    if (QLabel *label = m_errorLabels.value(key)) {
        label->setText(message);
        label->setVisible(true);
    }
}

void SpaceEditor::updateEnabled()
{
    const bool any = m_slots->value() > 0;
    m_fields.value(QStringLiteral("blocks.types"))->setEnabled(any);
    auto checked = [&](const QString &name) {
        return m_fields.value(QStringLiteral("blocks.types"))
            ->findChild<QCheckBox *>(QStringLiteral("blocks.types=") + name)
            ->isChecked();
    };
    m_convGroup->setEnabled(any && checked(QStringLiteral("conv")));
    m_attentionGroup->setEnabled(any && checked(QStringLiteral("conv-attention")));
}

void SpaceEditor::validate()
{
    updateEnabled();
    clearFieldErrors();
    m_error.clear();
    m_errorField.clear();
    m_space.reset();
    m_size.reset();
    const nlohmann::json j = currentJson();
    try {
        m_space.emplace(core::SearchSpace::fromJson(j, kSource));
    } catch (const std::exception &e) {
        m_error = QString::fromStdString(e.what());
        const auto [field, what] = splitMessage(m_error);
        showFieldError(field, what);
    }
    // The flow line: stem -> slots -> head as the space is now.
    QStringList types;
    for (const QString &t : kTypes)
        if (m_fields.value(QStringLiteral("blocks.types"))
                ->findChild<QCheckBox *>(QStringLiteral("blocks.types=") + t)
                ->isChecked())
            types << t;
    QString flow = tr("<b>input</b> %1\u00d7%1 \u2192 <b>stem</b> conv").arg(m_inputSize->value());
    for (int i = 0; i < m_slots->value(); ++i)
        flow += tr(" \u2192 <b>slot %1</b> {%2}").arg(i + 1).arg(types.join(QStringLiteral(" | ")));
    flow += tr(" \u2192 flatten \u2192 <b>head</b> dense \u00d7 {%1} \u2192 2 outputs")
                .arg(qobject_cast<QLineEdit *>(m_fields.value(QStringLiteral("head.layers")))->text());
    m_flow->setText(flow);

    if (m_space) {
        m_status->setText(tr("Valid space."));
        m_status->setStyleSheet(QStringLiteral("color: #1e7d32;"));
        m_sizeLabel->setText(tr("Size: computing\u2026"));
        m_pending = true;
        ++m_generation;
        m_debounce.start();
    } else {
        m_status->setText(m_errorField.isEmpty() ? m_error : tr("Not a valid space: %1").arg(m_error));
        m_status->setStyleSheet(QStringLiteral("color: #c0392b;"));
        m_sizeLabel->setText(tr("Size: \u2014"));
        m_preview->setRowCount(0);
        m_pending = false;
        ++m_generation;
    }
    Q_EMIT spaceChanged(m_space.has_value());
}

void SpaceEditor::startSize()
{
    if (!m_space)
        return;
    if (m_future.isRunning()) {
        m_debounce.start(); // try again when the older computation is done
        return;
    }
    const core::SearchSpace space = *m_space;
    const int generation = m_generation;
    m_future.setFuture(QtConcurrent::run([space, generation]() {
        Result r;
        r.generation = generation;
        try {
            r.size = space.size();
            core::SearchRandom rng(20261201);
            for (int i = 0; i < 6; ++i) {
                const core::ArchSpec s = space.sample(rng);
                const core::Cost c = core::computeCost(s);
                r.preview.push_back({specSummary(s), c.params, c.macs, c.bops});
            }
        } catch (const std::exception &e) {
            r.error = QString::fromStdString(e.what());
        }
        return r;
    }));
}

void SpaceEditor::onSizeDone()
{
    const Result r = m_future.result();
    if (r.generation != m_generation) {
        if (m_pending)
            m_debounce.start();
        return;
    }
    m_pending = false;
    if (!r.error.isEmpty()) {
        m_sizeLabel->setText(tr("Size: \u2014"));
        m_status->setText(r.error);
        m_status->setStyleSheet(QStringLiteral("color: #c0392b;"));
        Q_EMIT sizeReady();
        return;
    }
    m_size = r.size;
    m_sizeLabel->setText(sizeText());
    m_preview->setRowCount(int(r.preview.size()));
    for (int i = 0; i < int(r.preview.size()); ++i) {
        const auto &p = r.preview[std::size_t(i)];
        m_preview->setItem(i, 0, new QTableWidgetItem(p.summary));
        m_preview->setItem(i, 1, new QTableWidgetItem(QString::number(p.params)));
        m_preview->setItem(i, 2, new QTableWidgetItem(QString::number(p.macs)));
        m_preview->setItem(i, 3, new QTableWidgetItem(QString::number(p.bops, 'e', 3)));
        for (int c = 1; c < 4; ++c)
            m_preview->item(i, c)->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    }
    m_preview->resizeRowsToContents();
    Q_EMIT sizeReady();
}

QString SpaceEditor::sizeText() const
{
    if (!m_size)
        return tr("Size: \u2014");
    const auto &s = *m_size;
    if (s.exact)
        return tr("Size: %1 distinct specs (%2, exact, %3)")
            .arg(QString::fromStdString(s.count))
            .arg(s.approx, 0, 'g', 3)
            .arg(QString::fromStdString(s.method));
    return tr("Size: at most %1 specs (~%2% within the constraints, from %3 samples)")
        .arg(QString::fromStdString(s.count))
        .arg(s.feasibleFraction * 100, 0, 'f', 1)
        .arg(s.samples);
}

void SpaceEditor::waitForSize()
{
    while (isComputing()) {
        if (m_debounce.isActive()) {
            m_debounce.stop();
            startSize();
        }
        m_future.waitForFinished();
        QCoreApplication::sendPostedEvents();
        QCoreApplication::processEvents();
    }
}

} // namespace braggnac::ui
