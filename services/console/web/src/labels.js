import { serverNow } from './stores/session'

// Chinese labels for the services' codes, in one place.
export const ROLE_LABELS = { office: '办公室', department: '承办单位', supervisor: '督查', editor: '分类编辑', admin: '系统管理员' }
export const roleLabel = (role) => ROLE_LABELS[role] || role || ''

export const STATUS_LABELS = {
  assigned: '待签收', signed: '办理中', reviewing: '审核中', replied: '已答复', returned: '已退回', withdrawn: '已改派',
  open: '办理中', awaiting_feedback: '待评价', closed: '已办结', merged: '已并案',
}
export const statusLabel = (s) => STATUS_LABELS[s] || s
// A case's own status where it reads differently from an assignment's (复核 of an 不满意).
export const caseStatusLabel = (s) => ({ reviewing: '复核中' })[s] || statusLabel(s)

// An opinion's status at intake (我的意见): 待立案 and 来信 for members' 提案/建议.
export const OPINION_STATUS_LABELS = {
  filing: '待立案', letter: '来信', open: '已受理', supporting: '已附议', merged: '已并案', closed: '已办结',
}

// 立案: what a member's submission is, and the grade of a department's reply to a filed one.
export const FORMS = ['社情民意', '提案', '建议']
export const isFiled = (form) => form === '提案' || form === '建议'
export const GRADE_LABELS = { A: 'A 已解决', B: 'B 正在解决', C: 'C 说明解释', D: 'D 留作参考' }

export const URGENCY_LABELS = { emergency: '紧急', timeliness: '时效', general: '一般', complex: '复杂' }

// How soon a deadline is: colour for the countdown tags.
export function dueTag(dueAt, now = serverNow()) {
  const hours = (new Date(dueAt).getTime() - now) / 3600000
  if (hours < 0) return { type: 'danger', text: `已超期 ${Math.ceil(-hours / 24)} 天` }
  if (hours < 24) return { type: 'warning', text: `剩余 ${Math.max(1, Math.floor(hours))} 小时` }
  return { type: 'success', text: `剩余 ${Math.floor(hours / 24)} 天` }
}

// "YYYY-MM" of the Beijing month ``offset`` months from now, by the services' clock.
export function beijingMonth(offset = 0) {
  const now = new Date(serverNow() + 8 * 3600000)
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1))
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`
}

export const formatTime = (at) => (at ? new Date(at).toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai', hour12: false }) : '')

// Events people can subscribe to; a name missing here is shown as it is.
export const EVENT_LABELS = {
  'opinion.received': '意见登记', 'opinion.supported': '附议', 'opinion.merged': '并案', 'opinion.split': '拆分',
  'opinion.triage': '待人工分拣', 'opinion.assigned': '交办', 'opinion.briefed': '交办（全文）', 'opinion.withdrawn': '改派撤回',
  'assignment.signed': '签收', 'assignment.replied': '答复', 'assignment.returned': '退回', 'assignment.input_given': '协办意见',
  'assignment.extension_requested': '申请延期', 'assignment.extension_approved': '延期获批', 'assignment.extension_refused': '延期未获批',
  'deadline.warning': '到期提醒', 'deadline.breached': '超期', 'case.escalated': '催办/督办', 'case.reopened': '重办', 'case.closed': '办结',
  'feedback.requested': '邀请评价', 'feedback.received': '收到评价', 'opinion.adopted': '采用', 'opinion.instructed': '批示',
  'member.enrolled': '委员/代表入册', 'opinion.filed': '立案决定', 'assignment.plan_due': '跟踪督办',
}
export const eventLabel = (name) => EVENT_LABELS[name] || name
